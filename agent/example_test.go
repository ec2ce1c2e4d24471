package agent_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// waf blocks requests for /admin and tags the others.
type waf struct {
	agent.Base
}

func (waf) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if strings.HasPrefix(ev.GetUri(), "/admin") {
		resp := agent.Block(403, "forbidden")
		resp.Audit = agent.Audit([]string{"waf"}, "admin-path")
		return resp, nil
	}
	resp := agent.Allow()
	resp.RequestHeaders = append(resp.RequestHeaders, agent.SetHeader("x-waf", "checked"))
	return resp, nil
}

// Serve a handler on a Unix socket and talk to it as a proxy would, with
// raw frames.
func Example() {
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "waf.sock")

	srv, err := agent.NewServer(waf{}, agent.WithAgentID("waf-1"), agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := srv.ListenUnix(path)
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeUnix(context.Background(), ln)
	defer srv.Close()

	// The proxy side.
	conn, err := net.Dial("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	r := codec.NewReader(conn, 0)
	send := func(m *agentv2.ProxyToAgent) {
		if err := codec.WriteFrameTo(conn, m, 0); err != nil {
			log.Fatal(err)
		}
	}
	recv := func() *agentv2.AgentToProxy {
		for {
			m := &agentv2.AgentToProxy{}
			if err := r.ReadAgentToProxy(m); err != nil {
				log.Fatal(err)
			}
			if m.GetHealth() == nil { // health reports come and go
				return m
			}
		}
	}

	send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions: []uint32{2}, ProxyId: "proxy-1",
	}}})
	hs := recv().GetHandshake()
	fmt.Println("handshake:", hs.GetSuccess(), hs.GetCapabilities().GetAgentId())

	for i, uri := range []string{"/index.html", "/admin/users"} {
		send(&agentv2.ProxyToAgent{EventId: uint64(i + 1), Message: &agentv2.ProxyToAgent_RequestHeaders{
			RequestHeaders: &agentv2.RequestHeadersEvent{
				Metadata: &agentv2.RequestMetadata{CorrelationId: fmt.Sprint("req-", i+1)},
				Method:   "GET",
				Uri:      uri,
			},
		}})
		m := recv()
		resp := m.GetResponse()
		switch {
		case resp.GetBlock() != nil:
			fmt.Printf("event %d %s: block %d, rules %v\n", m.EventId, resp.GetCorrelationId(), resp.GetBlock().GetStatus(), resp.GetAudit().GetRuleIds())
		case resp.GetAllow() != nil:
			fmt.Printf("event %d %s: allow, set %s\n", m.EventId, resp.GetCorrelationId(), resp.GetRequestHeaders()[0].GetSet().GetName())
		}
	}
	// Output:
	// handshake: true waf-1
	// event 1 req-1: allow, set x-waf
	// event 2 req-2: block 403, rules [admin-path]
}

// Serve a handler with grpc-go and call it as a proxy would.
func ExampleServer_RegisterGRPC() {
	srv, err := agent.NewServer(waf{}, agent.WithAgentID("waf-1"), agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go gs.Serve(ln)
	defer gs.Stop()
	defer srv.Close()

	// The proxy side.
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := agentv2.NewAgentServiceV2Client(cc).ProcessStream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	recv := func() *agentv2.AgentToProxy {
		for {
			m, err := stream.Recv()
			if err != nil {
				log.Fatal(err)
			}
			if m.GetHealth() == nil {
				return m
			}
		}
	}
	_ = stream.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{SupportedVersions: []uint32{2}}}})
	fmt.Println("handshake:", recv().GetHandshake().GetSuccess())
	_ = stream.Send(&agentv2.ProxyToAgent{EventId: 7, Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: "req-7"},
		Uri:      "/admin",
	}}})
	m := recv()
	fmt.Println("event", m.EventId, m.GetResponse().GetCorrelationId(), "block", m.GetResponse().GetBlock().GetStatus())
	// Output:
	// handshake: true
	// event 7 req-7 block 403
}
