package pool

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
)

// request is the three events of a minimal exchange: headers (pick and
// pin), a body chunk (follow the pin) and request_complete (unpin).
type request [3]*agentv2.ProxyToAgent

func newRequests(n int) []request {
	out := make([]request, n)
	for i := range out {
		corr := "req-" + strconv.Itoa(i)
		out[i] = request{
			{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
				Metadata: &agentv2.RequestMetadata{CorrelationId: corr}, Method: "GET", Uri: "/"}}},
			{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
				CorrelationId: corr, Data: []byte("x"), IsLast: true}}},
			{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
				CorrelationId: corr, StatusCode: 200}}},
		}
	}
	return out
}

// newBenchPool is a pool with one agent of four in-memory connections.
func newBenchPool(b *testing.B, opts ...Option) *Pool {
	b.Helper()
	opts = append([]Option{WithProbeInterval(time.Hour, time.Second)}, opts...)
	p, err := New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	for range 4 {
		if err := p.AdoptConn("waf", newMemConn()); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// BenchmarkHotPath measures the pool's own cost per event (pick, affinity,
// flow-control check, concurrency slot, accounting) over a transport that
// answers at once. ns/event and allocs/event are per event, not per
// three-event request.
func BenchmarkHotPath(b *testing.B) {
	for _, policy := range []string{balancer.RoundRobin, balancer.LeastInFlight, balancer.Weighted, balancer.Random} {
		b.Run(policy, func(b *testing.B) {
			p := newBenchPool(b, WithPolicy(policy))
			reqs := newRequests(1024)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for _, ev := range reqs[i%len(reqs)] {
					if _, err := p.Send(ctx, "waf", ev); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			reportPerEvent(b, 3)
			if n := p.lookup("waf").aff.Len(); n != 0 {
				b.Fatalf("%d pins left", n)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		p := newBenchPool(b)
		reqs := newRequests(1 << 14)
		var next atomic.Uint64
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for _, ev := range reqs[next.Add(1)%uint64(len(reqs))] {
					if _, err := p.Send(ctx, "waf", ev); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
		b.StopTimer()
		reportPerEvent(b, 3)
	})
	b.Run("fixed_clock", func(b *testing.B) {
		// Without the clock reads, which cost more than the pool in VMs.
		t0 := time.Unix(1_700_000_000, 0)
		p := newBenchPool(b, WithClock(func() time.Time { return t0 }))
		reqs := newRequests(1024)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			for _, ev := range reqs[i%len(reqs)] {
				if _, err := p.Send(ctx, "waf", ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		reportPerEvent(b, 3)
	})
	b.Run("interceptor", func(b *testing.B) {
		p := newBenchPool(b, WithInterceptors(InterceptorFunc(func(next SendFunc) SendFunc { return next })))
		reqs := newRequests(1024)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			for _, ev := range reqs[i%len(reqs)] {
				if _, err := p.Send(ctx, "waf", ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		reportPerEvent(b, 3)
	})
}

func reportPerEvent(b *testing.B, events int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
