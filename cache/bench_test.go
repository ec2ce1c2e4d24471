package cache_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// BenchmarkHit is the proxy CPU of a cache hit: key, lookup and the
// caller's copy of a decision with a header mutation, 20 request headers.
func BenchmarkHit(b *testing.B) {
	ic, err := cache.NewInterceptor()
	if err != nil {
		b.Fatal(err)
	}
	defer ic.Close()
	answer := agent.CacheFor(agent.AllowSetRequestHeader("x-waf", "pass"), time.Minute, agent.ByMethod(), agent.ByPath(), agent.ByHeader("authorization"))
	var calls atomic.Int64
	send := ic.WrapSend(func(context.Context, *pool.Call) (*agentv2.AgentResponse, error) {
		calls.Add(1)
		return answer.CloneVT(), nil
	})
	ev := headersEvent("GET", "/api/v1/items?page=2")
	for i := range 20 {
		ev.GetRequestHeaders().Headers = append(ev.GetRequestHeaders().Headers, &agentv2.Header{Name: "x-h" + strconv.Itoa(i), Value: "some value of a header"})
	}
	call := &pool.Call{AgentID: "waf", CorrelationID: "c", Type: agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, Event: ev}
	ctx := context.Background()
	if _, err := send(ctx, call); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		c := *call
		for pb.Next() {
			if _, err := send(ctx, &c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// CPU time, GC included, stays meaningful on a loaded machine.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if calls.Load() != 1 {
		b.Fatalf("%d agent calls, want 1", calls.Load())
	}
}

// processCPU is the CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
