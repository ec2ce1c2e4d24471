// Command caddy-demo is cmd/caddy with agentwire's example WAF agent
// (examples/waf-agent/waf) served in the same process on a Unix socket,
// for examples/caddy: one command runs the whole demo.
//
//	go -C contrib/caddy run ./cmd/caddy-demo run --config ../../examples/caddy/Caddyfile
//
// The socket is $AGENTWIRE_WAF_SOCKET, which the Caddyfile reads; when
// unset, agentwire-caddy-waf.sock in the temporary directory.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/agentwire/agentwire/agent"
	_ "github.com/agentwire/agentwire/contrib/caddy"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
)

func main() {
	if err := startWAF(); err != nil {
		fmt.Fprintln(os.Stderr, "caddy-demo:", err)
		os.Exit(1)
	}
	caddycmd.Main()
}

// startWAF serves the example WAF agent on its socket until the process
// exits.
func startWAF() error {
	sock := os.Getenv("AGENTWIRE_WAF_SOCKET")
	if sock == "" {
		sock = filepath.Join(os.TempDir(), "agentwire-caddy-waf.sock")
		if err := os.Setenv("AGENTWIRE_WAF_SOCKET", sock); err != nil {
			return err
		}
	}
	srv, err := agent.NewServer(new(waf.Handler), agent.WithAgentID("waf-agent"), agent.WithName("waf-agent"))
	if err != nil {
		return err
	}
	ln, err := srv.ListenUnix(sock)
	if err != nil {
		return fmt.Errorf("waf agent: %w", err)
	}
	go func() {
		if err := srv.ServeUnix(context.Background(), ln); err != nil {
			fmt.Fprintln(os.Stderr, "caddy-demo: waf agent:", err)
		}
	}()
	return nil
}
