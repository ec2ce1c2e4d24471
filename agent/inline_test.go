package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// inlineCounts returns the inline counters of the server's only session.
func inlineCounts(t *testing.T, srv *Server) (inlined, takeovers, cooldown int) {
	t.Helper()
	srv.mu.Lock()
	require.Len(t, srv.sessions, 1)
	s := srv.sessions[0]
	srv.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inlined, s.takeovers, s.cooldown
}

// gateHandler blocks requests whose correlation id starts with "slow"
// until released; others are answered at once.
type gateHandler struct {
	Base
	release chan struct{}
	started chan string
}

func (h *gateHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	cid := ev.GetMetadata().GetCorrelationId()
	if len(cid) >= 4 && cid[:4] == "slow" {
		h.started <- cid
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return Allow(), nil
}

func TestInlineQuickHandlersRunOnTheReader(t *testing.T) {
	t.Parallel()
	e := startUDS(t, Base{})
	c := e.dialReady()
	for i := range 200 {
		c.Send(requestHeaders(uint64(i+1), fmt.Sprint("r", i)))
	}
	got := c.responses(200)
	require.Len(t, got, 200)
	inlined, takeovers, _ := inlineCounts(t, e.srv)
	// A takeover needs a handler to outlive the 1 ms budget: with this
	// handler only a stalled machine causes one.
	assert.Greater(t, inlined, 100, "quick handlers run on the reading goroutine")
	assert.Less(t, takeovers, 5)
}

func TestInlineSlowHandlerIsTakenOver(t *testing.T) {
	t.Parallel()
	h := &gateHandler{release: make(chan struct{}), started: make(chan string, 10)}
	e := startUDS(t, h, WithInlineBudget(2*time.Millisecond))
	c := e.dialReady()
	c.Send(requestHeaders(1, "slow-1"))
	<-h.started
	// The slow handler holds the reading goroutine; after the budget a new
	// reader answers the next requests without waiting for it.
	start := time.Now()
	for i := range 10 {
		c.Send(requestHeaders(uint64(i+2), fmt.Sprint("quick-", i)))
	}
	got := c.responses(10)
	require.Len(t, got, 10)
	assert.Less(t, time.Since(start), 5*time.Second)
	for id := range got {
		assert.NotEqual(t, uint64(1), id, "the slow request is still running")
	}
	_, takeovers, cooldown := inlineCounts(t, e.srv)
	assert.Equal(t, 1, takeovers)
	assert.Greater(t, cooldown, 0, "after a slow handler, events go to workers for a while")

	// Another slow request now runs on a worker: quick ones are not held up
	// even for the budget.
	c.Send(requestHeaders(20, "slow-2"))
	<-h.started
	c.Send(requestHeaders(21, "quick-after"))
	r := c.response()
	assert.Equal(t, uint64(21), r.GetEventId())
	_, takeovers, _ = inlineCounts(t, e.srv)
	assert.Equal(t, 1, takeovers, "a worker ran it: no second takeover")

	close(h.release)
	rest := c.responses(2)
	assert.Contains(t, rest, uint64(1))
	assert.Contains(t, rest, uint64(20))
}

func TestInlineRequestOrderKeptAcrossTakeover(t *testing.T) {
	t.Parallel()
	h := &chunkOrderHandler{seen: make(map[string][]uint32), release: make(chan struct{})}
	e := startUDS(t, h, WithInlineBudget(time.Millisecond))
	c := e.dialReady()
	// The first chunk of request "slow-a" blocks inline until a takeover
	// happened; its later chunks must still run after it, in order.
	c.Send(requestHeaders(1, "slow-a"))
	for i := range 5 {
		c.Send(bodyChunk(uint64(i+2), "slow-a", uint32(i)))
	}
	time.Sleep(20 * time.Millisecond)
	close(h.release)
	got := c.responses(6)
	require.Len(t, got, 6)
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Equal(t, []uint32{0, 1, 2, 3, 4}, h.seen["slow-a"])
}

// chunkOrderHandler records the order of body chunks per request; request
// headers block until release is closed.
type chunkOrderHandler struct {
	Base
	release chan struct{}
	mu      sync.Mutex
	seen    map[string][]uint32
}

func (h *chunkOrderHandler) RequestHeaders(ctx context.Context, _ *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	<-h.release
	return Allow(), nil
}

func (h *chunkOrderHandler) RequestBodyChunk(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	h.mu.Lock()
	h.seen[ev.GetCorrelationId()] = append(h.seen[ev.GetCorrelationId()], ev.GetChunkIndex())
	h.mu.Unlock()
	return Allow(), nil
}

func TestInlineWatchWakesAfterQuiet(t *testing.T) {
	t.Parallel()
	h := &gateHandler{release: make(chan struct{}), started: make(chan string, 10)}
	e := startUDS(t, h, WithInlineBudget(2*time.Millisecond))
	c := e.dialReady()
	c.Send(requestHeaders(1, "quick-0"))
	c.response()
	// With nothing running inline the watch stops ticking.
	eventually(t, e.srv.watch.parked.Load, "watch parked after a quiet spell")
	c.Send(requestHeaders(2, "slow-1"))
	<-h.started
	c.Send(requestHeaders(3, "quick-1"))
	assert.Equal(t, uint64(3), c.response().GetEventId(), "the parked watch woke and took the reading over")
	close(h.release)
	assert.Equal(t, uint64(2), c.response().GetEventId())
}

// sleepyHandler sleeps for requests whose correlation id starts with
// "sleepy", as a handler slower than the budget yet not slow enough for a
// takeover.
type sleepyHandler struct {
	Base
	sleep time.Duration
}

func (h sleepyHandler) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if strings.HasPrefix(ev.GetMetadata().GetCorrelationId(), "sleepy") {
		time.Sleep(h.sleep)
	}
	return Allow(), nil
}

func TestInlineCooldownNeedsTwoSlowEventsInARow(t *testing.T) {
	t.Parallel()
	// The watch looks every 10 budgets while all is quiet: 300 ms, so
	// 40 ms handlers finish long before it could take one over.
	e := startUDS(t, sleepyHandler{sleep: 40 * time.Millisecond}, WithInlineBudget(30*time.Millisecond))
	c := e.dialReady()
	c.Send(requestHeaders(1, "sleepy-1"))
	c.response()
	c.Send(requestHeaders(2, "quick-1"))
	c.response()
	c.Send(requestHeaders(3, "sleepy-2"))
	c.response()
	_, takeovers, cooldown := inlineCounts(t, e.srv)
	require.Zero(t, takeovers)
	assert.Zero(t, cooldown, "a lone slow event (with a quick one between) starts no cooldown")
	c.Send(requestHeaders(4, "sleepy-3"))
	c.response()
	_, takeovers, cooldown = inlineCounts(t, e.srv)
	require.Zero(t, takeovers)
	assert.Positive(t, cooldown, "two slow events in a row start a cooldown")
}
