package agenttest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
)

// Run the suite against an agent on a Unix socket and report each check.
func ExampleRun() {
	// An agent to check: the example WAF, served by the Go SDK.
	srv, _ := agent.NewServer(&waf.Handler{}, agent.WithAgentID("waf"),
		agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	dir, _ := os.MkdirTemp("", "aw")
	defer os.RemoveAll(dir)
	ln, _ := srv.ListenUnix(filepath.Join(dir, "waf.sock"))
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeUnix(ctx, ln) }()
	defer func() { stop(); srv.Close(); <-served }()

	results, err := agenttest.Run(context.Background(), "unix://"+filepath.Join(dir, "waf.sock"),
		agenttest.WithMutationHeader("x-waf"),
		agenttest.WithChecks("handshake", "decision/block", "decision/header-mutation", "frames/malformed"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		fmt.Println(r.Name, r.Status())
	}
	fmt.Println("conforms:", agenttest.Passed(results))
	// Output:
	// handshake PASS
	// decision/block PASS
	// decision/header-mutation PASS
	// frames/malformed PASS
	// conforms: true
}
