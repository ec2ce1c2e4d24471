// Command caddy-demo is cmd/caddy with agentwire's example WAF agent
// (examples/waf-agent/waf) served in the same process on a Unix socket,
// for examples/caddy: one command runs the whole demo.
//
//	go -C contrib/caddy run ./cmd/caddy-demo run --config ../../examples/caddy/Caddyfile
//
// The socket is $AGENTWIRE_WAF_SOCKET, which the Caddyfile reads; when
// unset, agentwire-caddy-waf.sock in the temporary directory. With
// $AGENTWIRE_TOKEN set, the agent also dials Caddy's reverse listener at
// $AGENTWIRE_REVERSE_SOCKET (agentwire-caddy-reverse.sock there) with that
// token, for examples/caddy/reverse.Caddyfile.
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
	srv, err := startWAF()
	if err == nil {
		err = dialCaddy(srv)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "caddy-demo:", err)
		os.Exit(1)
	}
	caddycmd.Main()
}

// startWAF serves the example WAF agent on its socket until the process
// exits.
func startWAF() (*agent.Server, error) {
	sock, err := socketEnv("AGENTWIRE_WAF_SOCKET", "agentwire-caddy-waf.sock")
	if err != nil {
		return nil, err
	}
	srv, err := agent.NewServer(new(waf.Handler), agent.WithAgentID("waf-agent"), agent.WithName("waf-agent"))
	if err != nil {
		return nil, err
	}
	ln, err := srv.ListenUnix(sock)
	if err != nil {
		return nil, fmt.Errorf("waf agent: %w", err)
	}
	go func() {
		if err := srv.ServeUnix(context.Background(), ln); err != nil {
			fmt.Fprintln(os.Stderr, "caddy-demo: waf agent:", err)
		}
	}()
	return srv, nil
}

// dialCaddy, with $AGENTWIRE_TOKEN set, makes srv dial Caddy's reverse
// listener too (retrying until Caddy listens) until the process exits.
func dialCaddy(srv *agent.Server) error {
	token := os.Getenv("AGENTWIRE_TOKEN")
	if token == "" {
		return nil
	}
	sock, err := socketEnv("AGENTWIRE_REVERSE_SOCKET", "agentwire-caddy-reverse.sock")
	if err != nil {
		return err
	}
	d, err := agent.NewReverseDialer(srv, "unix://"+sock, agent.WithAgentToken(token))
	if err != nil {
		return err
	}
	go func() { _ = d.Run(context.Background()) }()
	return nil
}

// socketEnv returns the socket path in $name, setting it to file in the
// temporary directory if unset, for the Caddyfile to read.
func socketEnv(name, file string) (string, error) {
	if sock := os.Getenv(name); sock != "" {
		return sock, nil
	}
	sock := filepath.Join(os.TempDir(), file)
	return sock, os.Setenv(name, sock)
}
