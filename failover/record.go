package failover

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// request is what is kept of one request, to replay it elsewhere.
type request struct {
	mu sync.Mutex // mu guards the following
	// agentID and connID are where the request is now: the agent the
	// caller named or its fallback, and the connection pinned.
	agentID, connID string
	// buf holds the events (headers first, then those that followed, in
	// order) and the answers the caller got, marshalled one after the
	// other: one growing buffer rather than a copy of each message.
	buf    []byte
	box    *[]byte // buf's box in the buffer pool, reused to put it back
	events []kept
	inline [8]kept // events' first array: headers and a few body chunks
	// reserved is what the request holds of the total bound: len(buf)
	// rounded up to the bound's quantum.
	reserved int64
	// refused is why the request can no longer fail over ("" while it can).
	refused Outcome
	// dead: a failover found the new agent answering otherwise; the
	// request's later events fail.
	dead bool
	// gone: the table forgot the request (it ended, or idled past the
	// TTL) while an event of it was in flight: nothing more is kept.
	gone bool
	gen  int // failovers so far: an event that failed before one follows the new pin
	// touched and seen are for the idle sweep: the clock when the request
	// started or a sweep last found it seen, and whether an event came
	// since (a flag, not a clock reading per event).
	touched int64
	seen    bool
}

// kept is where one event and its answer are in request.buf:
// buf[start:mid] and buf[mid:end].
type kept struct{ start, mid, end int }

// event returns the i-th kept event and the answer the caller got.
func (r *request) event(i int) (*agentv2.ProxyToAgent, *agentv2.AgentResponse, error) {
	k := r.events[i]
	ev, resp := new(agentv2.ProxyToAgent), new(agentv2.AgentResponse)
	if err := ev.UnmarshalVT(r.buf[k.start:k.mid]); err != nil {
		return nil, nil, err
	}
	if err := resp.UnmarshalVT(r.buf[k.mid:k.end]); err != nil {
		return nil, nil, err
	}
	return ev, resp, nil
}

const nShards = 32

// table keeps the requests of one agent that fails over, by correlation
// id (the same id goes to every agent of a chain, so each has its table),
// bounded in bytes per request and, with the other agents' tables, in
// total. It is safe for concurrent use.
type table struct {
	fallback   string // the agent's fallback agent, "" if none
	seed       maphash.Seed
	shards     [nShards]shard
	bytes      *bound
	perRequest int
	ttl        int64 // nanoseconds
	now        func() time.Time
	lastSweep  atomic.Int64
}

// bound is the bytes all tables keep, reserved by requests a quantum at
// a time so that most events touch no word both cores write. Reservations
// never pass limit; a request may be refused up to a quantum early.
type bound struct {
	total   atomic.Int64 // bytes reserved
	limit   int64
	quantum int64
}

// maxQuantum is the largest reservation step: a request of headers and a
// few body chunks reserves once.
const maxQuantum = 16 << 10

func newBound(limit int64) *bound {
	return &bound{limit: limit, quantum: min(maxQuantum, max(limit/1024, 1))}
}

type shard struct {
	mu sync.Mutex // mu guards m
	m  map[string]*request
	_  [64 - 16]byte // a cache line each: both cores take shards' locks
}

func newTable(cfg config, agent string, b *bound) *table {
	t := &table{fallback: cfg.fallback[agent], seed: maphash.MakeSeed(), bytes: b,
		perRequest: cfg.perRequest, ttl: int64(cfg.ttl), now: cfg.now}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*request)
	}
	return t
}

func (t *table) shard(corr string) *shard {
	return &t.shards[maphash.String(t.seed, corr)%nShards]
}

func (t *table) get(k string) *request {
	s := t.shard(k)
	s.mu.Lock()
	r := s.m[k]
	s.mu.Unlock()
	return r
}

// start keeps a new request, replacing any of the same key, and sweeps
// idle ones now and then.
func (t *table) start(k string, r *request) {
	now := t.now().UnixNano()
	r.touched, r.seen = now, false
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

// take forgets the request of k and returns it, or nil; the caller
// releases it.
func (t *table) take(k string) *request {
	s := t.shard(k)
	s.mu.Lock()
	r := s.m[k]
	delete(s.m, k)
	s.mu.Unlock()
	return r
}

// drop forgets r, which ended, unless a newer request has its key.
func (t *table) drop(k string, r *request) {
	s := t.shard(k)
	s.mu.Lock()
	if s.m[k] == r {
		delete(s.m, k)
	}
	s.mu.Unlock()
	t.release(r)
}

// keep appends an answered event to r, or gives r up past a bound.
// Called with r.mu held.
func (t *table) keep(r *request, kind agentv2.EventType, ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse) {
	r.seen = true
	if r.refused != "" || r.gone {
		return
	}
	if !replayable(kind) {
		t.giveUp(r, UnsafeEvent)
		return
	}
	evSize, respSize := ev.SizeVT(), resp.SizeVT()
	n := evSize + respSize
	if len(r.buf)+n > t.perRequest || !t.bytes.reserve(r, int64(len(r.buf)+n), int64(t.perRequest)) {
		t.giveUp(r, Overflow)
		return
	}
	if r.buf == nil {
		r.buf, r.box = getBuf()
	}
	k := kept{start: len(r.buf), mid: len(r.buf) + evSize, end: len(r.buf) + n}
	r.buf = slices.Grow(r.buf, n)[:k.end]
	_, err := ev.MarshalToSizedBufferVT(r.buf[k.start:k.mid])
	if err == nil {
		_, err = resp.MarshalToSizedBufferVT(r.buf[k.mid:k.end])
	}
	if err != nil {
		t.giveUp(r, UnsafeEvent)
		return
	}
	if r.events == nil {
		r.events = r.inline[:0]
	}
	r.events = append(r.events, k)
}

// reserve makes r's reservation cover need bytes, within ceiling: true,
// or false past the total. Called with r.mu held.
func (b *bound) reserve(r *request, need, ceiling int64) bool {
	if need <= r.reserved {
		return true
	}
	want := min((need+b.quantum-1)/b.quantum*b.quantum, max(ceiling, need))
	for {
		// Compare and swap rather than add and take back: the total never
		// passes the limit, even for a moment, so no request is refused
		// for another's attempt.
		cur := b.total.Load()
		if cur+want-r.reserved > b.limit {
			return false
		}
		if b.total.CompareAndSwap(cur, cur+want-r.reserved) {
			r.reserved = want
			return true
		}
	}
}

// free gives r's reservation and buffer back. Called with r.mu held.
func (b *bound) free(r *request) {
	b.total.Add(-r.reserved)
	putBuf(r.buf, r.box)
	r.buf, r.box, r.events, r.reserved = nil, nil, nil, 0
}

// giveUp frees r's events: it can no longer fail over, for reason.
func (t *table) giveUp(r *request, reason Outcome) {
	t.bytes.free(r)
	r.refused = reason
}

func (t *table) release(r *request) {
	r.mu.Lock()
	t.bytes.free(r)
	r.gone = true
	r.mu.Unlock()
}

// sweep forgets requests idle past the TTL. One seen since the last sweep
// counts as touched now: a request goes at least a TTL after its last
// event, and within a TTL and two sweeps (start sweeps every TTL/2).
func (t *table) sweep(now int64) {
	var idle []*request
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			if r.mu.TryLock() {
				if r.seen {
					r.touched, r.seen = now, false
				} else if now-r.touched > t.ttl {
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

// bufs recycles requests' buffers, boxed: a new one costs its zeroing and
// every growth's copy. Buffers past maxPooled are left to the collector.
var bufs sync.Pool

const maxPooled = 64 << 10

// getBuf returns an empty buffer and the box to put it back in.
func getBuf() ([]byte, *[]byte) {
	if box, ok := bufs.Get().(*[]byte); ok {
		return (*box)[:0], box
	}
	return make([]byte, 0, 1024), new([]byte)
}

func putBuf(b []byte, box *[]byte) {
	if b != nil && box != nil && cap(b) <= maxPooled {
		*box = b
		bufs.Put(box)
	}
}
