package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/grpc"
)

// In-process benchmarks: the agent (or the echo server) runs in the test
// process, so client and server share the CPUs and one profile shows
// both sides:
//
//	go test -run '^$' -bench . -benchmem ./cmd/agentbench
//	go test -run '^$' -bench UDSRoundTrip/inflight=64 -cpuprofile cpu.out ./cmd/agentbench
//
// ns/op is per exchange; with pipelining it is wall time divided by the
// exchanges of all goroutines.

// benchInflight are the pipelining depths of the benchmarks: one exchange
// at a time, and 64 goroutines on one connection.
var benchInflight = []int{1, 64}

func benchSocket(b *testing.B) string {
	dir, err := os.MkdirTemp("", "awb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// serveWAF serves the example WAF policy in-process on a Unix socket and on
// a loopback gRPC listener.
func serveWAF(b *testing.B) agentAddrs {
	srv, err := agent.NewServer(&waf.Handler{}, agent.WithLogger(quietLogger))
	if err != nil {
		b.Fatal(err)
	}
	path := benchSocket(b)
	ln, err := srv.ListenUnix(path)
	if err != nil {
		b.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = srv.ServeUnix(ctx, ln); done <- struct{}{} }()
	go func() { _ = gs.Serve(gln); done <- struct{}{} }()
	b.Cleanup(func() {
		cancel()
		gs.Stop()
		srv.Close()
		<-done
		<-done
	})
	return agentAddrs{uds: path, grpc: gln.Addr().String()}
}

// runInflight runs b.N round trips over inflight goroutines, each with its
// own round trip from newRT(i).
func runInflight(b *testing.B, inflight int, newRT func(i int) roundTrip) {
	ctx := context.Background()
	if inflight == 1 {
		rt := newRT(0)
		b.ResetTimer()
		for range b.N {
			if err := rt(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Int64
	b.SetParallelism((inflight + 1) / 2) // GOMAXPROCS is 2 on the reference machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rt := newRT(int(next.Add(1)-1) % inflight)
		for pb.Next() {
			if err := rt(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func senderRT(s sender, i int) roundTrip {
	ev := headersEvent(i)
	return func(ctx context.Context) error {
		_, err := s.Send(ctx, ev)
		return err
	}
}

// BenchmarkRawRoundTrip is the raw-frames baseline in one process.
func BenchmarkRawRoundTrip(b *testing.B) {
	for _, inflight := range benchInflight {
		b.Run(benchName(inflight), func(b *testing.B) {
			path := benchSocket(b)
			ln, err := net.Listen("unix", path)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { serveRaw(ln); close(done) }()
			defer func() { _ = ln.Close(); <-done }()
			// Enough slots for every goroutine RunParallel may start.
			c, err := dialRaw(context.Background(), path, 2*inflight)
			if err != nil {
				b.Fatal(err)
			}
			defer c.close()
			size := frameSize(headersEvent(0))
			var slot atomic.Int64
			runInflight(b, inflight, func(int) roundTrip { return c.roundTrip(int(slot.Add(1)-1), size) })
		})
	}
}

// BenchmarkUDSRoundTrip is a request-headers event and the WAF's decision
// over one transport.Conn on a Unix socket.
func BenchmarkUDSRoundTrip(b *testing.B) {
	for _, inflight := range benchInflight {
		b.Run(benchName(inflight), func(b *testing.B) {
			a := serveWAF(b)
			c, err := transport.DialUnix(context.Background(), a.uds)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			runInflight(b, inflight, func(i int) roundTrip { return senderRT(c, i) })
		})
	}
}

// BenchmarkPoolUDSRoundTrip is BenchmarkUDSRoundTrip through a pool with
// one connection.
func BenchmarkPoolUDSRoundTrip(b *testing.B) {
	for _, inflight := range benchInflight {
		b.Run(benchName(inflight), func(b *testing.B) {
			a := serveWAF(b)
			p, err := pool.New(pool.WithConnections(1), pool.WithMaxConcurrency(4*inflight+16, 0), pool.WithLogger(quietLogger))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			if err := p.AddAgent(context.Background(), agentID, "unix://"+a.uds); err != nil {
				b.Fatal(err)
			}
			runInflight(b, inflight, func(i int) roundTrip { return senderRT(poolSender{p}, i) })
		})
	}
}

// BenchmarkGRPCRoundTrip is BenchmarkUDSRoundTrip over grpc-go.
func BenchmarkGRPCRoundTrip(b *testing.B) {
	for _, inflight := range benchInflight {
		b.Run(benchName(inflight), func(b *testing.B) {
			a := serveWAF(b)
			c, err := transport.DialGRPC(context.Background(), a.grpc)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			runInflight(b, inflight, func(i int) roundTrip { return senderRT(c, i) })
		})
	}
}

// BenchmarkBareGRPCRoundTrip is the bare grpc-go baseline in one process.
func BenchmarkBareGRPCRoundTrip(b *testing.B) {
	for _, inflight := range benchInflight {
		b.Run(benchName(inflight), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			gs := newBareGRPCServer()
			done := make(chan struct{})
			go func() { _ = gs.Serve(ln); close(done) }()
			defer func() { gs.Stop(); <-done }()
			c, err := dialBareGRPC(context.Background(), ln.Addr().String(), 2*inflight)
			if err != nil {
				b.Fatal(err)
			}
			defer c.close()
			size := frameSize(headersEvent(0))
			var slot atomic.Int64
			runInflight(b, inflight, func(int) roundTrip { return c.roundTrip(int(slot.Add(1)-1), size) })
		})
	}
}

func benchName(inflight int) string {
	if inflight == 1 {
		return "inflight=1"
	}
	return "inflight=64"
}
