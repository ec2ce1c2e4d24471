package reliability_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logCounter counts what reaches the proxy's log.
type logCounter struct {
	lines, bytes atomic.Int64
	mu           sync.Mutex
	warned       []string // the proxy's own warnings
	truncated    int
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	n := len(r.Message)
	cut := false
	r.Attrs(func(a slog.Attr) bool {
		n += len(a.Key) + len(a.Value.String())
		cut = cut || a.Key == "truncated"
		return true
	})
	h.lines.Add(1)
	h.bytes.Add(int64(n))
	h.mu.Lock()
	defer h.mu.Unlock()
	if cut {
		h.truncated++
	}
	if strings.Contains(r.Message, "lines dropped") {
		h.warned = append(h.warned, r.Message)
	}
	return nil
}

// TestAgentLogFlood: an agent sends 20,000 log lines and a few of 2 MiB.
// With the clock frozen, exactly the burst passes (the rest is dropped and
// counted), each line passed is cut to the size limit, and a warning says
// how many were dropped once lines pass again.
func TestAgentLogFlood(t *testing.T) {
	t.Parallel()
	const (
		flood = 20000
		big   = 5
		rate  = 50
		limit = 1024
	)
	huge := strings.Repeat("x", 2<<20)
	sent, more := make(chan struct{}), make(chan struct{})
	path := filepath.Join(shortDir(t), "a.sock")
	p, err := testagent.ListenFramedPeer(path, func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("flood") != nil {
				return
			}
			line := func(msg string, fields map[string]string) error {
				return c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Log{Log: &agentv2.LogMessage{
					Level: agentv2.LogLevel_LOG_LEVEL_ERROR, Message: msg, Fields: fields}}})
			}
			for i := range big {
				if line(huge, map[string]string{"k": huge, "i": strings.Repeat("y", i)}) != nil {
					return
				}
			}
			for range flood {
				if line("attack", nil) != nil {
					return
				}
			}
			close(sent)
			// An event's answer follows every log line before it.
			ev, err := c.RecvEvent()
			if err != nil || c.Reply(ev, nil) != nil {
				return
			}
			<-more
			if line("calm", nil) != nil {
				return
			}
			c.Serve()
		}
	})
	require.NoError(t, err)
	defer p.Close()

	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := &logCounter{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := transport.DialUnix(ctx, path, transport.WithLogger(slog.New(h)), transport.WithClock(clock),
		transport.WithAgentLogLimit(rate, limit))
	require.NoError(t, err)
	defer c.Close(context.Background())

	<-sent
	// An event's answer follows every log line on the connection.
	_, err = c.Send(ctx, headersEvent("after-flood", "/"))
	require.NoError(t, err)
	st := c.Status()
	assert.Equal(t, uint64(flood+big-rate), st.LogsDropped)
	assert.Equal(t, int64(rate), h.lines.Load(), "lines written while the clock stood still")
	assert.Less(t, h.bytes.Load(), int64(big*(5*limit+200)+(rate-big)*200), "bytes written to the proxy's log")
	h.mu.Lock()
	assert.Equal(t, big, h.truncated, "every oversize line is marked as cut")
	h.mu.Unlock()

	// A second later, lines pass again, after one warning with the count.
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	close(more)
	_, err = c.Send(ctx, headersEvent("calm", "/"))
	require.NoError(t, err)
	assert.Equal(t, int64(rate+2), h.lines.Load())
	h.mu.Lock()
	assert.Len(t, h.warned, 1)
	h.mu.Unlock()
	assert.Equal(t, st.LogsDropped, c.Status().LogsDropped)
}
