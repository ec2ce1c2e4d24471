package failover

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// key names a request of an agent: the same correlation id goes to every
// agent of a chain.
type key struct{ agent, corr string }

// request is what is kept of one request, to replay it elsewhere.
type request struct {
	mu sync.Mutex // mu guards the following
	// agentID and connID are where the request is now: the agent the
	// caller named or its fallback, and the connection pinned.
	agentID, connID string
	events          []kept // headers first, then the events that followed, in order
	bytes           int
	// refused is why the request can no longer fail over ("" while it can).
	refused Outcome
	// dead: a failover found the new agent answering otherwise; the
	// request's later events fail.
	dead    bool
	gen     int   // failovers so far: an event that failed before one follows the new pin
	touched int64 // clock of the last event, for the idle sweep
}

// kept is one event and the answer the caller got for it.
type kept struct {
	ev   *agentv2.ProxyToAgent
	resp *agentv2.AgentResponse
}

const nShards = 32

// table keeps the requests of the agents that fail over, bounded in bytes
// per request and in total. It is safe for concurrent use.
type table struct {
	seed       maphash.Seed
	shards     [nShards]shard
	total      atomic.Int64 // bytes kept
	limit      int64
	perRequest int
	ttl        int64 // nanoseconds
	now        func() time.Time
	lastSweep  atomic.Int64
}

type shard struct {
	mu sync.Mutex // mu guards m
	m  map[key]*request
}

func newTable(cfg config) *table {
	t := &table{seed: maphash.MakeSeed(), limit: cfg.total, perRequest: cfg.perRequest, ttl: int64(cfg.ttl), now: cfg.now}
	for i := range t.shards {
		t.shards[i].m = make(map[key]*request)
	}
	return t
}

func (t *table) shard(k key) *shard {
	return &t.shards[maphash.String(t.seed, k.corr)%nShards]
}

func (t *table) get(k key) *request {
	s := t.shard(k)
	s.mu.Lock()
	r := s.m[k]
	s.mu.Unlock()
	return r
}

// start keeps a new request, replacing any of the same key, and sweeps
// idle ones now and then.
func (t *table) start(k key, r *request) {
	now := t.now().UnixNano()
	r.touched = now
	s := t.shard(k)
	s.mu.Lock()
	old := s.m[k]
	s.m[k] = r
	s.mu.Unlock()
	if old != nil {
		t.release(old)
	}
	if last := t.lastSweep.Load(); now-last > t.ttl/2 && t.lastSweep.CompareAndSwap(last, now) {
		t.sweep(now)
	}
}

// drop forgets a request that ended.
func (t *table) drop(k key) {
	s := t.shard(k)
	s.mu.Lock()
	r := s.m[k]
	delete(s.m, k)
	s.mu.Unlock()
	if r != nil {
		t.release(r)
	}
}

// keep appends an answered event to r, or gives r up past a bound.
// Called with r.mu held.
func (t *table) keep(r *request, ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse) {
	r.touched = t.now().UnixNano()
	if r.refused != "" {
		return
	}
	if !replayable(ev.EventType()) {
		t.giveUp(r, UnsafeEvent)
		return
	}
	n := ev.SizeVT() + resp.SizeVT()
	if r.bytes+n > t.perRequest {
		t.giveUp(r, Overflow)
		return
	}
	if t.total.Add(int64(n)) > t.limit {
		t.total.Add(-int64(n))
		t.giveUp(r, Overflow)
		return
	}
	r.bytes += n
	r.events = append(r.events, kept{ev: ev.CloneVT(), resp: resp.CloneVT()})
}

// giveUp frees r's events: it can no longer fail over, for reason.
func (t *table) giveUp(r *request, reason Outcome) {
	t.total.Add(-int64(r.bytes))
	r.events, r.bytes, r.refused = nil, 0, reason
}

func (t *table) release(r *request) {
	r.mu.Lock()
	t.total.Add(-int64(r.bytes))
	r.events, r.bytes = nil, 0
	r.mu.Unlock()
}

// sweep forgets requests idle past the TTL.
func (t *table) sweep(now int64) {
	var idle []*request
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			if r.mu.TryLock() {
				if now-r.touched > t.ttl {
					delete(s.m, k)
					idle = append(idle, r)
				}
				r.mu.Unlock()
			}
		}
		s.mu.Unlock()
	}
	for _, r := range idle {
		t.release(r)
	}
}

// len is the number of requests kept.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// replayable reports whether events of kind can be sent again to another
// connection: the request's own events, whose answers are compared, not
// re-applied. Websocket frames and guardrail inspections are not.
func replayable(kind agentv2.EventType) bool {
	switch kind {
	case agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK,
		agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS, agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK:
		return true
	}
	return false
}
