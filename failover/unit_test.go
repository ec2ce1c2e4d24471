package failover

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	b := newBudget(2, 0.5)
	assert.True(t, b.spend())
	assert.True(t, b.spend())
	assert.False(t, b.spend(), "burst spent")
	b.earn()
	assert.False(t, b.spend(), "half a token")
	b.earn()
	assert.True(t, b.spend(), "two requests earn one")
	for range 10 {
		b.earn()
	}
	assert.Equal(t, int64(2000), b.milli.Load(), "capped at max")
}

func TestWindowQuantile(t *testing.T) {
	t.Parallel()
	var w window
	for i := range windowStep - 1 {
		w.add(time.Duration(i+1)*time.Millisecond, 0.95)
	}
	assert.Zero(t, w.cached.Load(), "not enough samples")
	w.add(windowStep*time.Millisecond, 0.95)
	assert.Equal(t, int64(31*time.Millisecond), w.cached.Load())
}

func TestTableBoundsAndSweep(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	tb := newTable(config{perRequest: 100, total: 150, ttl: time.Minute, shared: shared{now: func() time.Time { return now }}})
	ev := func(corr string, n int) *agentv2.ProxyToAgent {
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: corr, Data: make([]byte, n)}}}
	}
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	r1, r2 := &request{}, &request{}
	tb.keep(r1, ev("r1", 60), allow)
	tb.start(key{"a", "r1"}, r1)
	assert.Empty(t, r1.refused)
	tb.keep(r1, ev("r1", 60), allow)
	assert.Equal(t, Overflow, r1.refused, "per request")
	assert.Zero(t, tb.total.Load(), "its bytes are freed")
	tb.keep(r2, ev("r2", 60), allow)
	tb.start(key{"a", "r2"}, r2)
	r3 := &request{}
	tb.keep(r3, ev("r3", 60), allow)
	tb.start(key{"a", "r3"}, r3)
	assert.Empty(t, r3.refused, "two requests fit in the total")
	tb.keep(r3, ev("r3", 10), allow)
	assert.Equal(t, Overflow, r3.refused, "past the total")
	r4 := &request{}
	tb.keep(r4, ev("r4", 1), allow)
	tb.start(key{"a", "r4"}, r4)
	tb.keep(r4, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{}}, allow)
	assert.Equal(t, UnsafeEvent, r4.refused)

	now = now.Add(2 * time.Minute)
	tb.start(key{"a", "r5"}, &request{})
	assert.Equal(t, 1, tb.len(), "idle requests swept")
	assert.Zero(t, tb.total.Load())
}
