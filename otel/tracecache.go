package otel

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/agent"
)

// cacheShards splits a traceCache so that requests rarely share a lock.
const cacheShards = 32

// cacheKey names one request of one proxy connection.
type cacheKey struct {
	peer *agent.Peer
	cid  string
}

// traceCache remembers, per request, the trace context its request_headers
// event carried, so that the request's later events (which carry none)
// join the same trace. Entries end with the request (request_complete, a
// final decision) or when idle for the TTL; the cache is bounded, and a
// request that finds it full (after expired entries are swept) is not
// remembered. It is safe for concurrent use.
type traceCache struct {
	perShard int
	ttl      int64 // nanoseconds
	seed     maphash.Seed
	full     atomic.Uint64 // requests not remembered because the cache was full
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex // mu guards m
	m  map[cacheKey]cacheEntry
}

type cacheEntry struct {
	sc      trace.SpanContext
	touched int64
}

func newTraceCache(entries int, ttl time.Duration) *traceCache {
	if entries <= 0 {
		return nil
	}
	c := &traceCache{perShard: max(1, (entries+cacheShards-1)/cacheShards), ttl: int64(ttl), seed: maphash.MakeSeed()}
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
			if now-e.touched > c.ttl {
				delete(s.m, key)
			}
		}
		if len(s.m) >= c.perShard {
			c.full.Add(1)
			return false
		}
	}
	s.m[k] = cacheEntry{sc: sc, touched: now}
	return true
}

// get returns k's trace context and marks it used; expired entries are
// removed and not returned.
func (c *traceCache) get(k cacheKey, now int64) (trace.SpanContext, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return trace.SpanContext{}, false
	}
	if now-e.touched > c.ttl {
		delete(s.m, k)
		return trace.SpanContext{}, false
	}
	e.touched = now
	s.m[k] = e
	return e.sc, true
}

func (c *traceCache) del(k cacheKey) {
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// len counts the entries (tests).
func (c *traceCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
