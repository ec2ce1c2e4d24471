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
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/grpc"
)

// childCommand is the hidden first argument that makes agentbench act as
// one of its own server processes.
const childCommand = "__child"

// runChild runs a server process until SIGTERM or SIGINT:
//
//	__child baseline -uds PATH -grpc ADDR -grpc-pb ADDR -connect ADDR
//	__child agent [-uds PATH] [-grpc ADDR] [-connect ADDR] [-reverse unix://PATH -conns N] [-delay D]
//
// It prints "ready" once it serves, and returns the exit status.
func runChild(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "agentbench child: want baseline or agent")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "baseline":
		err = runBaselineServer(ctx, args[1:])
	case "agent":
		err = runAgentServer(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown child %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentbench child:", err)
		return 1
	}
	return 0
}

// runBaselineServer serves the three bare echo servers.
func runBaselineServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	udsPath := fs.String("uds", "", "raw frames on this Unix socket")
	grpcAddr := fs.String("grpc", "", "bare grpc-go echo on this address")
	connectAddr := fs.String("connect", "", "bare connect-go echo (h2c) on this address")
	pbAddr := fs.String("grpc-pb", "", "bare grpc-go AgentServiceV2 with the default protobuf codec on this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var closers []func()
	var wg sync.WaitGroup
	if *udsPath != "" {
		ln, err := net.Listen("unix", *udsPath)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); serveRaw(ln) }()
		closers = append(closers, func() { _ = ln.Close() })
	}
	if *grpcAddr != "" {
		ln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			return err
		}
		fmt.Printf("listening grpc %s\n", ln.Addr())
		gs := newBareGRPCServer()
		wg.Add(1)
		go func() { defer wg.Done(); _ = gs.Serve(ln) }()
		closers = append(closers, gs.Stop)
	}
	if *pbAddr != "" {
		ln, err := net.Listen("tcp", *pbAddr)
		if err != nil {
			return err
		}
		fmt.Printf("listening grpc-pb %s\n", ln.Addr())
		gs := newBarePBServer()
		wg.Add(1)
		go func() { defer wg.Done(); _ = gs.Serve(ln) }()
		closers = append(closers, gs.Stop)
	}
	if *connectAddr != "" {
		ln, err := net.Listen("tcp", *connectAddr)
		if err != nil {
			return err
		}
		fmt.Printf("listening connect %s\n", ln.Addr())
		hs := newBareConnectServer()
		wg.Add(1)
		go func() { defer wg.Done(); _ = hs.Serve(ln) }()
		closers = append(closers, func() { _ = hs.Close() })
	}
	fmt.Println("ready")
	<-ctx.Done()
	for _, c := range closers {
		c()
	}
	wg.Wait()
	return nil
}

// slowHandler is the example WAF policy, answering request headers only
// after delay (or when the proxy cancels): it parks requests in flight.
type slowHandler struct {
	waf.Handler
	delay time.Duration
}

func (h *slowHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	t := time.NewTimer(h.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Handler.RequestHeaders(ctx, ev)
}

// runAgentServer serves the example WAF policy (examples/waf-agent/waf) the
// way examples/waf-agent does, plus what that command has no flags for:
// reverse connections and an artificial delay.
func runAgentServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	udsPath := fs.String("uds", "", "serve the framed protocol on this Unix socket")
	grpcAddr := fs.String("grpc", "", "serve gRPC on this address")
	connectAddr := fs.String("connect", "", "serve Connect/gRPC over h2c on this address")
	reverse := fs.String("reverse", "", "dial the proxy's reverse listener at this address (unix:///path)")
	conns := fs.Int("conns", 1, "reverse connections to keep open")
	delay := fs.Duration("delay", 0, "answer request headers after this long (0: at once)")
	maxConc := fs.Int("max-concurrency", agent.DefaultMaxConcurrency, "events handled at once per connection")
	cacheTTL := fs.Duration("cache-ttl", 0, "mark request-header decisions cacheable for this long (0: never)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var h agent.Handler = &waf.Handler{CacheTTL: *cacheTTL}
	if *delay > 0 {
		h = &slowHandler{delay: *delay}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := agent.NewServer(h, agent.WithAgentID("waf-agent"), agent.WithName("waf-agent"),
		agent.WithMaxConcurrency(*maxConc), agent.WithMaxQueue(*maxConc), agent.WithLogger(logger),
		agent.WithBorrowedEvents()) // as examples/waf-agent
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var closers []func()
	if *udsPath != "" {
		ln, err := srv.ListenUnix(*udsPath)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.ServeUnix(ctx, ln) }()
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
		go func() { defer wg.Done(); _ = gs.Serve(ln) }()
		closers = append(closers, gs.Stop)
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
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("connect server", "err", err)
			}
		}()
		closers = append(closers, func() { _ = hs.Close() })
	}
	if *reverse != "" {
		d, err := agent.NewReverseDialer(srv, *reverse, agent.WithConnections(*conns),
			agent.WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}
	fmt.Println("ready")
	<-ctx.Done()
	srv.Close()
	for _, c := range closers {
		c()
	}
	wg.Wait()
	return nil
}
