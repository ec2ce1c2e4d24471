package otel

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// memConn is an in-memory transport.Conn that allows every event at once,
// so that benchmarks measure the pool and the Interceptor, not a transport.
type memConn struct {
	resp *agentv2.AgentResponse
	done chan struct{}
	once sync.Once
}

var _ transport.Conn = (*memConn)(nil)

func newMemConn() *memConn {
	return &memConn{
		resp: &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}},
		done: make(chan struct{}),
	}
}

func (c *memConn) Send(context.Context, *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return c.resp, nil
}
func (c *memConn) Cancel(context.Context, *agentv2.CancelRequest) error { return nil }
func (c *memConn) Notify(context.Context, *agentv2.ProxyToAgent) error  { return nil }
func (c *memConn) Gathering() bool                                      { return false }
func (c *memConn) Ping(context.Context) (time.Duration, error)          { return 0, nil }
func (c *memConn) Capabilities() *agentv2.AgentCapabilities {
	return &agentv2.AgentCapabilities{ProtocolVersion: 2}
}
func (c *memConn) Status() transport.Status                 { return transport.Status{State: transport.StateReady} }
func (c *memConn) Paused(string) bool                       { return false }
func (c *memConn) WaitResume(context.Context, string) error { return nil }
func (c *memConn) Done() <-chan struct{}                    { return c.done }
func (c *memConn) Err() error                               { return nil }
func (c *memConn) Close(context.Context) error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// cpuMeter reports CPU nanoseconds per unit of work next to wall time.
type cpuMeter struct {
	b     *testing.B
	start int64
	ok    bool
}

func startCPU(b *testing.B) *cpuMeter {
	c := &cpuMeter{b: b}
	c.start, c.ok = cpuTime()
	return c
}

func (c *cpuMeter) report(perOp int, unit string) {
	if end, ok := cpuTime(); ok && c.ok && c.b.N > 0 {
		c.b.ReportMetric(float64(end-c.start)/float64(c.b.N*perOp), "cpu-ns/"+unit)
	}
}

// benchVariants are the configurations the overhead is measured for.
func benchVariants(b *testing.B) []struct {
	name string
	ic   func() pool.Interceptor
} {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	drop := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	all := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = drop.Shutdown(context.Background())
		_ = all.Shutdown(context.Background())
	})
	prop := WithPropagator(propagation.TraceContext{})
	mk := func(opts ...Option) func() pool.Interceptor {
		return func() pool.Interceptor {
			o, err := NewInterceptor(opts...)
			if err != nil {
				b.Fatal(err)
			}
			return o
		}
	}
	return []struct {
		name string
		ic   func() pool.Interceptor
	}{
		{"no-otel", func() pool.Interceptor { return nil }},
		{"nop-interceptor", func() pool.Interceptor { return pool.InterceptorFunc(nopWrap) }},
		{"disabled", mk(WithoutTracing(), WithoutMetrics(), prop)},
		{"unset-globals", mk()},
		{"sampler-drops", mk(WithTracerProvider(drop), WithoutMetrics(), prop)},
		{"sampled", mk(WithTracerProvider(all), WithoutMetrics(), prop)},
		{"metrics-only", mk(WithoutTracing(), WithMeterProvider(mp), prop)},
		{"sampled+metrics", mk(WithTracerProvider(all), WithMeterProvider(mp), prop)},
	}
}

func nopWrap(next pool.SendFunc) pool.SendFunc { return next }

func benchEvents(n int) [][3]*agentv2.ProxyToAgent {
	out := make([][3]*agentv2.ProxyToAgent, n)
	for i := range out {
		cid := "req-" + strconv.Itoa(i)
		out[i] = [3]*agentv2.ProxyToAgent{headers(cid, "/"), bodyChunk(cid), complete(cid)}
	}
	return out
}

// BenchmarkPoolSend measures pool.Send per event (headers, body chunk,
// request_complete) over an in-memory connection, without OpenTelemetry
// and with the Interceptor in each configuration: the difference to
// "no-otel" is the Interceptor's cost.
func BenchmarkPoolSend(b *testing.B) {
	for _, v := range benchVariants(b) {
		b.Run(v.name, func(b *testing.B) {
			opts := []pool.Option{pool.WithLogger(quiet()), pool.WithProbeInterval(time.Hour, time.Second)}
			if ic := v.ic(); ic != nil {
				opts = append(opts, pool.WithInterceptors(ic))
			}
			p, err := pool.New(opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close() })
			for range 4 {
				if err := p.AdoptConn("waf", newMemConn()); err != nil {
					b.Fatal(err)
				}
			}
			reqs := benchEvents(1024)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU(b)
			for i := range b.N {
				r := reqs[i%len(reqs)]
				md := r[0].GetRequestHeaders().GetMetadata()
				md.Traceparent, md.Tracestate = nil, nil
				for _, ev := range r {
					if _, err := p.Send(ctx, "waf", ev); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			cpu.report(3, "event")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(3*b.N), "ns/event")
		})
	}
}

// BenchmarkWrapSend measures the pool side's wrapper alone for one event,
// around a pipeline that fills the Call and allows at once: the exact
// per-event overhead.
func BenchmarkWrapSend(b *testing.B) {
	resp := newMemConn().resp
	pipeline := func(_ context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		c.ConnID, c.Endpoint, c.Duration = "waf/1", "unix:///run/waf.sock", time.Microsecond
		return resp, nil
	}
	for _, v := range benchVariants(b) {
		ic := v.ic()
		if ic == nil {
			continue
		}
		b.Run(v.name, func(b *testing.B) {
			ev := headers("bench", "/")
			c := &pool.Call{AgentID: "waf", CorrelationID: "bench", Type: agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, Event: ev}
			send := ic.WrapSend(pipeline)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			md := ev.GetRequestHeaders().GetMetadata()
			cpu := startCPU(b)
			for range b.N {
				md.Traceparent, md.Tracestate = nil, nil
				if _, err := send(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(1, "op")
		})
	}
}

// BenchmarkInterceptor measures the agent side's wrapper around a handler
// that allows at once, for a request_headers event carrying a traceparent.
func BenchmarkInterceptor(b *testing.B) {
	drop := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	all := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() {
		_ = drop.Shutdown(context.Background())
		_ = all.Shutdown(context.Background())
	})
	prop := WithPropagator(propagation.TraceContext{})
	allow := func(context.Context, *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) { return nil, nil }
	for _, v := range []struct {
		name string
		opts []Option
	}{
		{"disabled", []Option{WithoutTracing(), WithoutMetrics(), prop}},
		{"sampler-drops", []Option{WithTracerProvider(drop), WithoutMetrics(), prop}},
		{"sampled", []Option{WithTracerProvider(all), WithoutMetrics(), prop}},
	} {
		b.Run(v.name, func(b *testing.B) {
			ic, err := NewInterceptor(v.opts...)
			if err != nil {
				b.Fatal(err)
			}
			f := ic.WrapEvent(allow)
			ev := headers("bench", "/")
			tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
			ev.GetRequestHeaders().Metadata.Traceparent = &tp
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU(b)
			for range b.N {
				if _, err := f(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(1, "op")
		})
	}
}
