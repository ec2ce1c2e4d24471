// Command gateway is an httputil.ReverseProxy behind an agent (package httpguard); with no flags it runs
// the example WAF agent and an echo upstream in-process (demo.go) and listens on 127.0.0.1:8080:
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
	"net/http/httputil"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve HTTP on (keep it loopback)")
	agentURL := flag.String("agent", "", "agent endpoint (unix:///path, grpc://host:port, ...); default: an embedded WAF agent")
	upstream := flag.String("upstream", "", "upstream base URL; default: an embedded echo server")
	metrics := flag.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var mln net.Listener
	ln, err := net.Listen("tcp", *listen)
	if err == nil && *metrics != "" {
		mln, err = net.Listen("tcp", *metrics)
	}
	if err == nil {
		err = serve(ctx, ln, mln, *agentURL, *upstream, slog.New(slog.NewTextHandler(os.Stderr, nil)),
			func(addr string) { fmt.Printf("gateway listening on http://%s\n", addr) })
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// serve runs the gateway on ln until ctx ends (demo.go's agent and upstream
// stand in for empty URLs), with metrics on metricsLn unless it is nil.
func serve(ctx context.Context, ln, metricsLn net.Listener, agentURL, upstreamURL string, logger *slog.Logger, ready func(addr string)) error {
	agentURL, up, stopDemo, err := startDemo(agentURL, upstreamURL, logger)
	if err != nil {
		return err
	}
	defer stopDemo()
	popts, measured, stopMetrics, err := serveMetrics(metricsLn)
	if err != nil {
		return err
	}
	defer stopMetrics()
	p, err := pool.New(append(popts, pool.WithLogger(logger))...)
	if err != nil {
		return err
	}
	defer p.Close()
	if err = p.AddAgent(ctx, "waf", agentURL); err != nil {
		return fmt.Errorf("agent %s: %w", agentURL, err)
	}
	g, err := httpguard.New(p, httpguard.WithLogger(logger), httpguard.WithAuditHeader("X-Agentwire-Audit"),
		httpguard.WithRoute("/", httpguard.WithAgent("waf", httpguard.WithEvents(httpguard.RequestBody|
			httpguard.ResponseHeaders|httpguard.ResponseBody|httpguard.RequestComplete))))
	if err != nil {
		return err
	}
	defer g.Close(context.Background())
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: measured(g.Middleware(&httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(up); r.SetXForwarded() },
		ErrorHandler:  httpguard.ProxyErrorHandler,
		FlushInterval: -1,
	}))}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	ready(ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err = hs.Shutdown(sctx); err == nil {
		if err = <-errc; errors.Is(err, http.ErrServerClosed) {
			err = p.Shutdown(sctx)
		}
	}
	return err
}
