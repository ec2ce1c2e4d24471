package otel

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// cacheShards splits a traceCache so that requests rarely share a lock.
const cacheShards = 32

// cacheKey names one request: of one proxy (its handshake's proxy id) on
// the agent side, whichever of its connections the events come on (a
// request_complete after a block may come on another); of one agent on the
// proxy side.
type cacheKey struct {
	scope string
	cid   string
}

// traceCache remembers, per request, the trace context its later events
// (which carry none on the wire, or are sent without the caller's span)
// join. Entries end with request_complete, live on for a short grace after
// a terminal decision (so that the request_complete a proxy still sends
// joins too), and expire when idle for the TTL; the cache is bounded, and a
// request that finds it full (after expired entries are swept) is not
// remembered. It is safe for concurrent use.
type traceCache struct {
	perShard int
	ttl      int64 // nanoseconds
	grace    int64 // nanoseconds an ended request is kept
	seed     maphash.Seed
	full     atomic.Uint64 // requests not remembered because the cache was full
	shards   [cacheShards]cacheShard
}

// endedGrace is how long a request is remembered after its terminal
// decision (at most the TTL).
const endedGrace = 30 * time.Second

type cacheShard struct {
	mu sync.Mutex // mu guards m
	m  map[cacheKey]cacheEntry
}

type cacheEntry struct {
	sc      trace.SpanContext
	expires int64
	ended   bool
}

func newTraceCache(entries int, ttl time.Duration) *traceCache {
	if entries <= 0 {
		return nil
	}
	c := &traceCache{perShard: max(1, (entries+cacheShards-1)/cacheShards), ttl: int64(ttl),
		grace: int64(min(ttl, endedGrace)), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry)
	}
	return c
}

func (c *traceCache) shard(k cacheKey) *cacheShard {
	return &c.shards[maphash.String(c.seed, k.cid)%cacheShards]
}

// put remembers sc for k at now (unix ns); false if the cache is full.
func (c *traceCache) put(k cacheKey, sc trace.SpanContext, now int64) bool {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for key, e := range s.m {
			if now > e.expires {
				delete(s.m, key)
			}
		}
		if len(s.m) >= c.perShard {
			c.full.Add(1)
			return false
		}
	}
	s.m[k] = cacheEntry{sc: sc, expires: now + c.ttl}
	return true
}

// get returns k's trace context and, unless its request ended, marks it
// used; expired entries are removed and not returned.
func (c *traceCache) get(k cacheKey, now int64) (trace.SpanContext, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return trace.SpanContext{}, false
	}
	if now > e.expires {
		delete(s.m, k)
		return trace.SpanContext{}, false
	}
	if !e.ended {
		e.expires = now + c.ttl
		s.m[k] = e
	}
	return e.sc, true
}

// end marks k's request ended by a terminal decision: kept for the grace.
func (c *traceCache) end(k cacheKey, now int64) {
	s := c.shard(k)
	s.mu.Lock()
	if e, ok := s.m[k]; ok && !e.ended {
		e.ended, e.expires = true, min(e.expires, now+c.grace)
		s.m[k] = e
	}
	s.mu.Unlock()
}

// finish forgets k after its request_complete event, or marks it ended
// after a terminal decision.
func (c *traceCache) finish(k cacheKey, t agentv2.EventType, resp *agentv2.AgentResponse, err error, now int64) {
	switch {
	case t == agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE:
		s := c.shard(k)
		s.mu.Lock()
		delete(s.m, k)
		s.mu.Unlock()
	case err == nil && terminal(resp):
		c.end(k, now)
	}
}

// len counts the entries of requests still open (tests).
func (c *traceCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range s.m {
			if !e.ended {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
