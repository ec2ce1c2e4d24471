package failover_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire/failover"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// memConn answers every event at once with allow: the pool's and the
// interceptor's own cost, without a transport.
type memConn struct{ done chan struct{} }

var _ transport.Conn = (*memConn)(nil)

var allow = &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}

func (c *memConn) Send(context.Context, *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return allow, nil
}
func (c *memConn) Cancel(context.Context, *agentv2.CancelRequest) error { return nil }
func (c *memConn) Notify(context.Context, *agentv2.ProxyToAgent) error  { return nil }
func (c *memConn) Ping(context.Context) (time.Duration, error)          { return 0, nil }
func (c *memConn) Capabilities() *agentv2.AgentCapabilities {
	return &agentv2.AgentCapabilities{ProtocolVersion: 2}
}
func (c *memConn) Status() transport.Status                 { return transport.Status{State: transport.StateReady} }
func (c *memConn) Paused(string) bool                       { return false }
func (c *memConn) WaitResume(context.Context, string) error { return nil }
func (c *memConn) Done() <-chan struct{}                    { return c.done }
func (c *memConn) Err() error                               { return nil }
func (c *memConn) Close(context.Context) error              { return nil }

// BenchmarkBuffering is the cost of failover's buffering on the normal
// path: a request of headers, four 1 KiB body chunks and request_complete,
// with and without the interceptor, over in-memory connections and over a
// real agent on a Unix socket, many requests at once on every core (where
// the cache lines both cores write cost most).
func BenchmarkBuffering(b *testing.B) {
	for _, conn := range []string{"mem", "unix"} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/failover=%v", conn, on), func(b *testing.B) {
				var opts []pool.Option
				if on {
					fo, err := failover.New(failover.WithAgents("waf"))
					if err != nil {
						b.Fatal(err)
					}
					opts = append(opts, pool.WithInterceptors(fo))
				}
				p := benchPool(b, conn, opts...)
				b.ReportAllocs()
				b.ResetTimer()
				var next atomic.Int64
				b.SetParallelism(32) // requests in flight, as a proxy has
				b.RunParallel(func(pb *testing.PB) {
					req := newBenchRequest()
					for pb.Next() {
						if err := req.send(p, fmt.Sprintf("r%d", next.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// benchRequest is a request of headers, four 1 KiB body chunks and
// request_complete, built once and sent again under new correlation ids,
// so that the benchmark measures the pool rather than building events.
type benchRequest struct {
	evs    []*agentv2.ProxyToAgent
	chunks []*agentv2.BodyChunkEvent
}

func newBenchRequest() *benchRequest {
	r := &benchRequest{evs: []*agentv2.ProxyToAgent{headers("")}}
	for j := range uint32(4) {
		ev := chunk("", j, 1024)
		r.evs = append(r.evs, ev)
		r.chunks = append(r.chunks, ev.GetRequestBodyChunk())
	}
	r.evs = append(r.evs, complete(""))
	return r
}

func (r *benchRequest) send(p *pool.Pool, corr string) error {
	r.evs[0].GetRequestHeaders().Metadata.CorrelationId = corr
	for _, c := range r.chunks {
		c.CorrelationId = corr
	}
	r.evs[len(r.evs)-1].GetRequestComplete().CorrelationId = corr
	for _, ev := range r.evs {
		if _, err := p.Send(context.Background(), "waf", ev); err != nil {
			return err
		}
	}
	return nil
}

func benchPool(b *testing.B, conn string, opts ...pool.Option) *pool.Pool {
	b.Helper()
	base := []pool.Option{pool.WithProbeInterval(time.Hour, time.Second), pool.WithLogger(slog.New(slog.DiscardHandler))}
	p, err := pool.New(append(base, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	if conn == "mem" {
		for range 2 {
			if err := p.AdoptConn("waf", &memConn{done: make(chan struct{})}); err != nil {
				b.Fatal(err)
			}
		}
		return p
	}
	in := newInstance(b, "bench")
	if err := p.AddAgent(context.Background(), "waf", in.endpoint()); err != nil {
		b.Fatal(err)
	}
	return p
}
