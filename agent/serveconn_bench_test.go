package agent

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// scriptConn is the proxy end of a framed connection as a script: reads
// return a handshake, then the given frames over and over until n frames
// were read, then EOF; writes are counted and dropped. Serving it measures
// the agent's own CPU per event, without a peer process or system calls.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	data     []byte
	ends     []int // offset after each frame of the replayed part
	hsLen    int   // bytes of the handshake at the start of data
	left     int   // bytes still to serve
	off      int
	written  atomic.Int64
}

func newScriptConn(tb testing.TB, frames []*agentv2.ProxyToAgent, n int) *scriptConn {
	hs, err := handshakeMsg(0).AppendFrame(nil, 0)
	require.NoError(tb, err)
	c := &scriptConn{data: hs, hsLen: len(hs)}
	for _, m := range frames {
		c.data, err = m.AppendFrame(c.data, 0)
		require.NoError(tb, err)
		c.ends = append(c.ends, len(c.data)-c.hsLen)
	}
	cycle := len(c.data) - c.hsLen
	c.left = c.hsLen + n/len(frames)*cycle
	if r := n % len(frames); r > 0 {
		c.left += c.ends[r-1]
	}
	return c
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.left)], c.data[c.off:])
	c.left -= n
	c.off += n
	if c.off == len(c.data) {
		c.off = c.hsLen
	}
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	return len(p), nil
}

func (c *scriptConn) Close() error         { return nil }
func (c *scriptConn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: "script", Net: "unix"} }

// wafLike answers request headers as the example WAF does for a clean
// request: it looks at the URI and the user agent and allows with a header.
type wafLike struct{ Base }

func (wafLike) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if strings.HasPrefix(ev.GetUri(), "/admin") {
		return Block(403, "forbidden"), nil
	}
	for _, h := range ev.GetHeaders() {
		if h.GetName() == "user-agent" && strings.Contains(strings.ToLower(h.GetValue()), "bot") {
			return Block(403, "bot"), nil
		}
	}
	return AllowSetRequestHeader("x-waf", "pass"), nil
}

// BenchmarkServeConnHeaders is the agent's CPU and allocations per
// 20-header request-headers event on a framed connection, everything but
// the socket: decode, session, handler, encode; with events owning their
// memory (the default) and borrowing the read buffer (WithBorrowedEvents).
func BenchmarkServeConnHeaders(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"owned", nil}, {"borrowed", []Option{WithBorrowedEvents()}}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := newTestServer(b, wafLike{}, mode.opts...)
			defer srv.Close()
			frames := make([]*agentv2.ProxyToAgent, 64)
			for i := range frames {
				frames[i] = headersEvent20(uint64(i + 1))
			}
			c := newScriptConn(b, frames, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			_ = srv.ServeConn(context.Background(), c)
			cpu := processCPU() - cpu0
			b.StopTimer()
			// The machine may be shared: CPU time says more than elapsed time.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			if b.N > 1000 && c.written.Load() < int64(b.N)*20 {
				b.Fatalf("only %d bytes of answers for %d events", c.written.Load(), b.N)
			}
		})
	}
}

// processCPU is the CPU time the process used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
