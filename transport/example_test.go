package transport_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// exampleWAF blocks /admin and allows the rest with one header mutation.
type exampleWAF struct{ agent.Base }

func (exampleWAF) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if strings.HasPrefix(ev.GetUri(), "/admin") {
		return agent.Block(403, "forbidden"), nil
	}
	r := agent.Allow()
	r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("x-waf", "pass"))
	return r, nil
}

// Dial an agent's Unix socket and send it request-headers events.
func ExampleDial() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aw-example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "waf.sock")

	// The agent side, normally another process.
	srv, _ := agent.NewServer(exampleWAF{}, agent.WithAgentID("waf"))
	ln, _ := srv.ListenUnix(sock)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeUnix(ctx, ln) }()
	defer func() { srv.Close(); <-served }()

	conn, err := transport.Dial(ctx, "unix://"+sock)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer conn.Close(ctx)
	fmt.Println("agent:", conn.Capabilities().GetAgentId())

	for _, uri := range []string{"/index.html", "/admin/users"} {
		resp, err := conn.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
			RequestHeaders: &agentv2.RequestHeadersEvent{
				Metadata: &agentv2.RequestMetadata{CorrelationId: "req" + uri},
				Method:   "GET", Uri: uri,
			}}})
		switch {
		case err != nil:
			fmt.Println(uri, "error:", agentwire.CodeOf(err))
		case resp.GetBlock() != nil:
			fmt.Println(uri, "blocked", resp.GetBlock().GetStatus())
		default:
			fmt.Println(uri, "allowed, set", resp.GetRequestHeaders()[0].GetSet().GetName())
		}
	}
	// Output:
	// agent: waf
	// /index.html allowed, set x-waf
	// /admin/users blocked 403
}
