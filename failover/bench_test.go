package failover_test

import (
	"context"
	"fmt"
	"log/slog"
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
// real agent on a Unix socket.
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
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					corr := fmt.Sprintf("r%d", i)
					evs := []*agentv2.ProxyToAgent{headers(corr)}
					for j := range uint32(4) {
						evs = append(evs, chunk(corr, j, 1024))
					}
					for _, ev := range append(evs, complete(corr)) {
						if _, err := p.Send(ctx, "waf", ev); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
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
