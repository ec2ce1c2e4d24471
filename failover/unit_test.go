package failover

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	tb := newTable(config{perRequest: 100, ttl: time.Minute, shared: shared{now: func() time.Time { return now }}}, "a", newBound(150))
	ev := func(corr string, n int) *agentv2.ProxyToAgent {
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: corr, Data: make([]byte, n)}}}
	}
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	r1, r2 := &request{}, &request{}
	tb.keep(r1, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r1", 60), allow)
	tb.start("r1", r1)
	assert.Empty(t, r1.refused)
	tb.keep(r1, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r1", 60), allow)
	assert.Equal(t, Overflow, r1.refused, "per request")
	assert.Zero(t, tb.bytes.total.Load(), "its bytes are freed")
	tb.keep(r2, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r2", 60), allow)
	tb.start("r2", r2)
	r3 := &request{}
	tb.keep(r3, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r3", 60), allow)
	tb.start("r3", r3)
	assert.Empty(t, r3.refused, "two requests fit in the total")
	tb.keep(r3, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r3", 10), allow)
	assert.Equal(t, Overflow, r3.refused, "past the total")
	r4 := &request{}
	tb.keep(r4, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r4", 1), allow)
	tb.start("r4", r4)
	tb.keep(r4, agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{}}, allow)
	assert.Equal(t, UnsafeEvent, r4.refused)

	now = now.Add(2 * time.Minute)
	tb.start("r5", &request{})
	assert.Equal(t, 4, tb.len(), "r2 idle since it started; r1, r3 and r4 had events since the last sweep")
	r5 := &request{}
	tb.keep(r5, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r5", 1), allow)
	tb.start("r5", r5)
	now = now.Add(45 * time.Second)
	tb.keep(r1, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, ev("r1", 1), allow)
	tb.start("r6", &request{})
	assert.Equal(t, 5, tb.len(), "r1 had an event; r3, r4 and r5 idle 45 s, under the TTL")
	now = now.Add(40 * time.Second)
	tb.start("r7", &request{})
	assert.Equal(t, 3, tb.len(), "r3, r4 and r5 idle 85 s: gone; r1 (40 s), r6 and r7 stay")
	now = now.Add(2 * time.Minute)
	tb.start("r8", &request{})
	assert.Equal(t, 1, tb.len(), "all but the new one idle past the TTL")
	assert.Zero(t, tb.bytes.total.Load())
}

// An event of a request the table forgot meanwhile (idle past the TTL)
// keeps nothing, so no bytes stay counted, and cannot fail over: its
// headers are gone.
func TestForgottenRequestKeepsNothing(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	tb := newTable(config{perRequest: 1 << 10, ttl: time.Minute, shared: shared{now: func() time.Time { return now }}}, "a", newBound(1<<20))
	chunk := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: "r1", Data: make([]byte, 100)}}}
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	r := &request{}
	tb.keep(r, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, chunk, allow)
	tb.start("r1", r)
	got := tb.get("r1") // an event of r1 on its way
	require.Same(t, r, got)
	now = now.Add(3 * time.Minute)
	tb.start("r2", &request{}) // sweeps r1
	require.Nil(t, tb.get("r1"))
	assert.Zero(t, tb.bytes.total.Load())

	got.mu.Lock()
	tb.keep(got, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, chunk, allow)
	got.mu.Unlock()
	assert.Zero(t, tb.bytes.total.Load(), "nothing kept for a forgotten request")
	assert.Empty(t, got.events)
	assert.Equal(t, Expired, refusal(got, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK))
}

// Requests reserve the total a quantum at a time: most events touch no
// shared word, a request never gets past the total, and it is refused at
// most a quantum early.
func TestReservationsBoundTheTotal(t *testing.T) {
	t.Parallel()
	b := &bound{limit: 4096, quantum: 1024}
	tb := newTable(config{perRequest: 2100, ttl: time.Minute, shared: shared{now: time.Now}}, "a", b)
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	// ev returns an event that takes n bytes with its answer.
	ev := func(n int) *agentv2.ProxyToAgent {
		e := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r"}}}
		chunk := e.GetRequestBodyChunk()
		for size := e.SizeVT() + allow.SizeVT(); size != n; size = e.SizeVT() + allow.SizeVT() {
			chunk.Data = make([]byte, len(chunk.Data)+n-size) // the lengths' varints grow with it
		}
		return e
	}
	const chunk = agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
	r1, r2, r3 := &request{}, &request{}, &request{}
	tb.keep(r1, chunk, ev(1500), allow)
	assert.Equal(t, int64(2048), b.total.Load(), "rounded up to the quantum")
	tb.keep(r1, chunk, ev(500), allow)
	assert.Equal(t, int64(2048), b.total.Load(), "within its reservation")
	tb.keep(r2, chunk, ev(1500), allow)
	assert.Equal(t, int64(4096), b.total.Load())
	tb.keep(r3, chunk, ev(200), allow)
	assert.Equal(t, Overflow, r3.refused, "past the total")
	assert.Equal(t, int64(4096), b.total.Load(), "a refused reservation is given back")
	tb.keep(r1, chunk, ev(100), allow)
	assert.Equal(t, Overflow, r1.refused, "a quantum more would pass the total")
	assert.Equal(t, int64(2048), b.total.Load(), "r1's reservation is freed")
	tb.keep(r2, chunk, ev(550), allow)
	assert.Empty(t, r2.refused)
	assert.Equal(t, int64(2100), b.total.Load(), "a reservation stops at the request's own bound")
	assert.Len(t, r2.events, 2)
	tb.release(r2)
	assert.Zero(t, b.total.Load())
}

// Requests keeping, giving up and ending on both cores at once leave the
// total as they found it, and never hold more than the bound.
func TestReservationsUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := &bound{limit: 64 << 10, quantum: 1 << 10}
	tb := newTable(config{perRequest: 8 << 10, ttl: time.Minute, shared: shared{now: time.Now}}, "a", b)
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	const chunk = agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
	var wg sync.WaitGroup
	var over atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 500 {
				corr := fmt.Sprintf("g%d-%d", g, i)
				r := &request{}
				r.mu.Lock()
				for range 1 + rng.IntN(6) {
					ev := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
						CorrelationId: corr, Data: make([]byte, rng.IntN(3000))}}}
					tb.keep(r, chunk, ev, allow)
					if n := b.total.Load(); n > b.limit {
						over.Store(n)
					}
				}
				r.mu.Unlock()
				tb.start(corr, r)
				if rng.IntN(2) == 0 {
					tb.drop(corr, r)
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, over.Load(), "the total never held more than the bound")
	for g := range 8 {
		for i := range 500 {
			if r := tb.take(fmt.Sprintf("g%d-%d", g, i)); r != nil {
				tb.release(r)
			}
		}
	}
	assert.Zero(t, b.total.Load(), "every reservation was given back")
	assert.Zero(t, tb.len())
}

// A request that ends forgets itself, not a newer request that took its
// correlation id meanwhile; request_complete takes the request out in the
// same step as it finds it.
func TestDropForgetsOnlyItsRequest(t *testing.T) {
	t.Parallel()
	tb := newTable(config{perRequest: 1 << 10, ttl: time.Minute, shared: shared{now: time.Now}}, "a", newBound(1<<20))
	older, newer := &request{}, &request{}
	tb.start("x", older)
	tb.start("x", newer) // replaces older, which is released
	assert.True(t, older.gone)
	tb.drop("x", older)
	assert.Same(t, newer, tb.get("x"), "the newer request stays")
	assert.Same(t, newer, tb.take("x"))
	assert.Nil(t, tb.get("x"), "taken out")
	assert.Nil(t, tb.take("x"))
}
