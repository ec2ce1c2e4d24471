// Command gateway is a small HTTP reverse proxy that consults an agent
// through an agentwire pool on every exchange: request headers (block,
// redirect and challenge are answered by the gateway, header mutations are
// applied), request and response bodies streamed to the agent in chunks,
// response headers, and request-complete. Websocket upgrades pass through
// with a sticky session.
//
// With no flags it starts the example WAF agent on a Unix socket and an
// echoing upstream in-process, and listens on 127.0.0.1:8080:
//
//	go run ./examples/gateway
//	curl -i http://127.0.0.1:8080/admin        # 403, blocked by the agent
//	curl -i http://127.0.0.1:8080/hello        # 200, with x-waf: pass added
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/agentwire/agentwire/pool"
)

func main() {
	var (
		listen   = flag.String("listen", "127.0.0.1:8080", "address to serve HTTP on (keep it loopback)")
		agentURL = flag.String("agent", "", "agent endpoint (unix:///path, grpc://host:port, ...); default: an embedded WAF agent")
		upstream = flag.String("upstream", "", "upstream base URL; default: an embedded echo server")
		metrics  = flag.String("metrics", "", "serve Prometheus metrics (through the OTel exporter) at http://ADDR/metrics, e.g. 127.0.0.1:9464")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
	var mln net.Listener
	if *metrics != "" {
		if mln, err = net.Listen("tcp", *metrics); err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
			os.Exit(1)
		}
		fmt.Printf("metrics on http://%s/metrics\n", mln.Addr())
	}
	if err := serve(ctx, ln, mln, *agentURL, *upstream, logger, func(addr string) {
		fmt.Printf("gateway listening on http://%s\n", addr)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// serve runs the gateway on ln until ctx ends, starting the embedded agent
// and upstream when agentURL or upstreamURL are empty, and serving metrics
// on metricsLn unless it is nil.
func serve(ctx context.Context, ln, metricsLn net.Listener, agentURL, upstreamURL string, logger *slog.Logger, ready func(addr string)) error {
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	if agentURL == "" {
		srv, err := agent.NewServer(&waf.Handler{}, agent.WithAgentID("waf"), agent.WithLogger(logger))
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "agentwire-gateway")
		if err != nil {
			return err
		}
		sock := filepath.Join(dir, "waf.sock")
		uln, err := srv.ListenUnix(sock)
		if err != nil {
			return err
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ServeUnix(context.Background(), uln) }()
		cleanups = append(cleanups, func() { srv.Close(); <-done; os.RemoveAll(dir) })
		agentURL = "unix://" + sock
	}
	if upstreamURL == "" {
		uln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		us := &http.Server{Handler: upstreamHandler(), ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		go func() { defer close(done); _ = us.Serve(uln) }()
		cleanups = append(cleanups, func() { _ = us.Close(); <-done })
		upstreamURL = "http://" + uln.Addr().String()
	}
	up, err := url.Parse(upstreamURL)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	popts := []pool.Option{pool.WithLogger(logger)}
	var m *metricsSetup
	if metricsLn != nil {
		if m, err = newMetrics(); err != nil {
			return err
		}
		popts = append(popts, m.poolOption())
	}
	p, err := pool.New(popts...)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = p.Close() })
	if err := p.AddAgent(ctx, "waf", agentURL); err != nil {
		return fmt.Errorf("agent %s: %w", agentURL, err)
	}
	if m != nil {
		mctx, mcancel := context.WithCancel(context.Background())
		mdone := make(chan struct{})
		go func() { defer close(mdone); _ = m.serve(mctx, metricsLn) }()
		cleanups = append(cleanups, func() { mcancel(); <-mdone })
	}
	hs := &http.Server{Handler: NewGateway(p, "waf", up, logger), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	_ = p.Shutdown(sctx)
	return err
}
