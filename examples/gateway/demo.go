package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
)

// startDemo starts, for an empty URL, the example WAF agent on a Unix
// socket and the echo upstream on loopback, and returns their URLs and
// how to stop them.
func startDemo(agentURL, upstreamURL string, logger *slog.Logger) (string, *url.URL, func(), error) {
	var cleanups []func()
	stop := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if agentURL == "" {
		srv, err := agent.NewServer(&waf.Handler{}, agent.WithAgentID("waf"), agent.WithLogger(logger))
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		dir, err := os.MkdirTemp("", "agentwire-gateway")
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		sock := filepath.Join(dir, "waf.sock")
		uln, err := srv.ListenUnix(sock)
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ServeUnix(context.Background(), uln) }()
		cleanups = append(cleanups, func() { srv.Close(); <-done; os.RemoveAll(dir) })
		agentURL = "unix://" + sock
	}
	if upstreamURL == "" {
		uln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return "", nil, nil, err
		}
		us := &http.Server{Handler: upstreamHandler(), ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		go func() { defer close(done); _ = us.Serve(uln) }()
		cleanups = append(cleanups, func() { _ = us.Close(); <-done })
		upstreamURL = "http://" + uln.Addr().String()
	}
	up, err := url.Parse(upstreamURL)
	if err != nil {
		stop()
		return "", nil, nil, fmt.Errorf("upstream: %w", err)
	}
	return agentURL, up, stop, nil
}
