package agent_test

// TestExtraEventEndToEnd (cmd/protoc-gen-go-agentuds) overlays this file on
// the agent package, with gen/ generated from the fixture schema, whose
// tls_client_hello event kind no hand-written line of the SDK names.

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// tlsGate decides on the new event kind: it blocks client hellos without
// ALPN.
type tlsGate struct{ agent.Base }

func (tlsGate) TlsClientHello(_ context.Context, ev *agentv2.TlsClientHelloEvent) (*agentv2.AgentResponse, error) {
	if cap(ev.Fingerprint) != len(ev.Fingerprint) {
		// The generated ClipBytes missed the new event's bytes field.
		return nil, agentwire.Errorf(agentwire.CodeInternal, "fingerprint not clipped: len %d, cap %d", len(ev.Fingerprint), cap(ev.Fingerprint))
	}
	if len(ev.GetAlpn()) == 0 {
		return agent.Block(421, "no alpn"), nil
	}
	return nil, nil
}

// baseOnly implements nothing: the generated base allows the new kind.
type baseOnly struct{ agent.Base }

func TestExtraEventServed(t *testing.T) {
	ev := func(cid string, alpn ...string) *agentv2.ProxyToAgent {
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_TlsClientHello{TlsClientHello: &agentv2.TlsClientHelloEvent{
			CorrelationId: cid, ServerName: "example.com", Alpn: alpn, Fingerprint: []byte{1, 2, 3},
		}}}
	}
	if got := ev("req-0").EventType(); got != agentv2.EventType_EVENT_TYPE_TLS_CLIENT_HELLO {
		t.Fatalf("EventType() = %v", got)
	}
	if cid, ok := ev("req-0").EventCorrelationID(); cid != "req-0" || !ok {
		t.Fatalf("CorrelationID = %q, %v", cid, ok)
	}
	for _, tr := range []string{"unix", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn := serve(t, ctx, tr, tlsGate{})
			if evs := conn.Capabilities().GetSupportedEvents(); !slices.Contains(evs, agentv2.EventType_EVENT_TYPE_TLS_CLIENT_HELLO) {
				t.Errorf("handshake declares %v, without the new kind", evs)
			}
			resp, err := conn.Send(ctx, ev("req-1"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetCorrelationId() != "req-1" || resp.GetBlock().GetStatus() != 421 {
				t.Errorf("no ALPN: got %v, want block 421 for req-1", resp)
			}
			resp, err = conn.Send(ctx, ev("req-2", "h2"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetCorrelationId() != "req-2" || resp.GetAllow() == nil {
				t.Errorf("ALPN h2: got %v, want allow for req-2", resp)
			}

			base := serve(t, ctx, tr, baseOnly{})
			resp, err = base.Send(ctx, ev("req-3"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetCorrelationId() != "req-3" || resp.GetAllow() == nil {
				t.Errorf("agent.Base: got %v, want allow for req-3", resp)
			}
		})
	}
}

// serve starts an agent for h on transport tr and dials it as a proxy.
func serve(t *testing.T, ctx context.Context, tr string, h agent.Handler) transport.Conn {
	t.Helper()
	srv, err := agent.NewServer(h, agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	var endpoint string
	done := make(chan struct{})
	switch tr {
	case "unix":
		path := filepath.Join(t.TempDir(), "a.sock")
		ln, err := srv.ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		go func() { defer close(done); _ = srv.ServeUnix(context.Background(), ln) }()
		t.Cleanup(func() { srv.Close(); <-done })
		endpoint = "unix://" + path
	case "grpc":
		gs := grpc.NewServer(agent.GRPCServerOptions()...)
		srv.RegisterGRPC(gs)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { defer close(done); _ = gs.Serve(ln) }()
		t.Cleanup(func() { srv.Close(); gs.Stop(); <-done })
		endpoint = "grpc://" + ln.Addr().String()
	}
	conn, err := transport.Dial(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
