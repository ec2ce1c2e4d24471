// Command waf-agent is agentwire's example WAF agent: the policy of package
// waf served over a Unix socket, gRPC (grpc-go), Connect (h2c), or a reverse
// connection it dials to a proxy. It is the agent the demos, benchmarks and
// reliability tests run as a separate process.
//
//	waf-agent -uds /tmp/waf.sock
//	waf-agent -grpc 127.0.0.1:7070
//	waf-agent -connect 127.0.0.1:7071
//
// It prints "listening grpc|connect <address>" on stdout for each TCP
// listener (port 0 picks a free port), then "ready" once every listener is
// up, and shuts down gracefully on SIGINT or SIGTERM. With
// OTEL_EXPORTER_OTLP_ENDPOINT set (OTLP/gRPC, http://127.0.0.1:4317) it
// exports a span per event, children of the proxy's (see tracing.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"google.golang.org/grpc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "waf-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		udsPath     = flag.String("uds", "", "serve the framed protocol on this Unix socket path")
		grpcAddr    = flag.String("grpc", "", "serve gRPC (grpc-go) on this loopback address, e.g. 127.0.0.1:7070")
		connectAddr = flag.String("connect", "", "serve Connect/gRPC/gRPC-Web over h2c on this loopback address")
		id          = flag.String("id", "waf-agent", "agent id reported in the handshake")
		maxConc     = flag.Int("max-concurrency", agent.DefaultMaxConcurrency, "events handled at once per connection")
		verbose     = flag.Bool("v", false, "log at debug level")
		cacheTTL    = flag.Duration("cache-ttl", 0, "mark request-header decisions cacheable by the proxy for this long (0: never)")
	)
	flag.Parse()
	if *udsPath == "" && *grpcAddr == "" && *connectAddr == "" {
		return errors.New("give at least one of -uds, -grpc, -connect")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tracing, flush, err := setupTracing(ctx, logger)
	if err != nil {
		return err
	}
	srv, err := agent.NewServer(&waf.Handler{CacheTTL: *cacheTTL}, append([]agent.Option{
		agent.WithAgentID(*id), agent.WithName("waf-agent"), agent.WithVersion("0.1.0"),
		agent.WithMaxConcurrency(*maxConc), agent.WithLogger(logger),
		// The WAF keeps nothing from an event once it has answered it.
		agent.WithBorrowedEvents(),
	}, tracing...)...)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	var shutdowns []func(context.Context)
	if *udsPath != "" {
		ln, err := srv.ListenUnix(*udsPath)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs <- srv.ServeUnix(ctx, ln) }()
	}
	if *grpcAddr != "" {
		ln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			return err
		}
		fmt.Printf("listening grpc %s\n", ln.Addr())
		gs := grpc.NewServer(agent.GRPCServerOptions()...)
		srv.RegisterGRPC(gs)
		wg.Add(1)
		go func() { defer wg.Done(); errs <- gs.Serve(ln) }()
		shutdowns = append(shutdowns, func(context.Context) { gs.GracefulStop() })
	}
	if *connectAddr != "" {
		ln, err := net.Listen("tcp", *connectAddr)
		if err != nil {
			return err
		}
		fmt.Printf("listening connect %s\n", ln.Addr())
		hs := &http.Server{Handler: srv.HTTPHandler(), Protocols: new(http.Protocols), ReadHeaderTimeout: 10 * time.Second}
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
		shutdowns = append(shutdowns, func(ctx context.Context) { _ = hs.Shutdown(ctx) })
	}
	fmt.Println("ready")

	select {
	case <-ctx.Done():
	case err := <-errs:
		if err != nil {
			logger.Error("listener failed", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	for _, f := range shutdowns {
		f(sctx)
	}
	srv.Close()
	wg.Wait()
	if err := flush(sctx); err != nil {
		logger.Warn("tracing: spans not flushed", "err", err)
	}
	return nil
}
