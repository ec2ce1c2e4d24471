package pool

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// tableShards splits a connTable so that requests rarely share a lock.
const tableShards = 64

// connTable maps string keys (correlation ids, session ids) to connections,
// bounded in size, with entries that expire when idle. It is safe for
// concurrent use; each shard has its own lock, held only for map work.
type connTable struct {
	max   int64
	ttl   int64 // nanoseconds
	seed  maphash.Seed
	count atomic.Int64
	// lost counts entries whose connection died: kept so that the rest of
	// the request fails clearly, but no longer open work.
	lost   atomic.Int64
	onZero func() // called when the last live entry goes
	shards [tableShards]tableShard
}

type tableShard struct {
	mu sync.Mutex // mu guards m
	m  map[string]tableEntry
	_  [48]byte // keep shards on separate cache lines
}

type tableEntry struct {
	sc      *SubConn
	touched int64 // unix nanoseconds of the last use
	// skip marks a request the pool answered without the agent (fail-open
	// on its headers): its remaining events skip the agent too.
	skip bool
	// lost marks a request whose connection died.
	lost bool
}

func newConnTable(maxEntries int, ttl time.Duration) *connTable {
	t := &connTable{max: int64(maxEntries), ttl: int64(ttl), seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]tableEntry)
	}
	return t
}

func (t *connTable) shard(key string) *tableShard {
	return &t.shards[maphash.String(t.seed, key)%tableShards]
}

// put binds key to sc, replacing any binding. It returns false, binding
// nothing, when the table is full.
func (t *connTable) put(key string, e tableEntry) bool {
	s := t.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; !ok {
		if t.count.Load() >= t.max {
			// Reclaim this shard's expired entries before refusing.
			removed := t.sweepShardLocked(s, e.touched)
			if removed == 0 || t.count.Load() >= t.max {
				s.mu.Unlock()
				return false
			}
		}
		t.count.Add(1)
	}
	s.m[key] = e
	s.mu.Unlock()
	return true
}

// get returns key's entry and marks it used at now; an expired entry is
// removed and not returned.
func (t *connTable) get(key string, now int64) (tableEntry, bool) {
	s := t.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	if !ok {
		s.mu.Unlock()
		return e, false
	}
	if now-e.touched > t.ttl {
		delete(s.m, key)
		s.mu.Unlock()
		t.removed(e)
		return tableEntry{}, false
	}
	// Rewriting the entry costs a second hash: do it only when the last
	// touch is older than a sixteenth of the TTL, which is all the
	// precision expiry needs.
	if now-e.touched > t.ttl/16 {
		e.touched = now
		s.m[key] = e
	}
	s.mu.Unlock()
	return e, true
}

// del removes key and returns what it was bound to.
func (t *connTable) del(key string) (tableEntry, bool) {
	s := t.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	if ok {
		delete(s.m, key)
	}
	s.mu.Unlock()
	if ok {
		t.removed(e)
	}
	return e, ok
}

func (t *connTable) removed(e tableEntry) {
	if e.lost {
		t.lost.Add(-1)
	}
	t.count.Add(-1)
	t.checkZero()
}

func (t *connTable) checkZero() {
	if t.onZero != nil && t.live() == 0 {
		t.onZero()
	}
}

// live is the number of entries whose connection has not died.
func (t *connTable) live() int { return int(t.count.Load() - t.lost.Load()) }

// markLost flags every entry bound to sc, whose connection died.
func (t *connTable) markLost(sc *SubConn) {
	var n int64
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.sc == sc && !e.lost && !e.skip {
				e.lost = true
				s.m[k] = e
				n++
			}
		}
		s.mu.Unlock()
	}
	if n > 0 {
		t.lost.Add(n)
		t.checkZero()
	}
}

// markKeyLost flags key's entry if it is bound to sc, whose connection died.
func (t *connTable) markKeyLost(key string, sc *SubConn) {
	s := t.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	ok = ok && e.sc == sc && !e.lost && !e.skip
	if ok {
		e.lost = true
		s.m[key] = e
	}
	s.mu.Unlock()
	if ok {
		t.lost.Add(1)
		t.checkZero()
	}
}

// sweep removes entries idle for longer than the TTL and returns how many.
func (t *connTable) sweep(now int64) int {
	total := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n := t.sweepShardLocked(s, now)
		s.mu.Unlock()
		total += n
	}
	return total
}

// sweepShardLocked removes s's expired entries; s.mu must be held (onZero
// only pokes a buffered channel, which is safe under it).
func (t *connTable) sweepShardLocked(s *tableShard, now int64) int {
	var n, lost int64
	for k, e := range s.m {
		if now-e.touched > t.ttl {
			delete(s.m, k)
			n++
			if e.lost {
				lost++
			}
		}
	}
	if n > 0 {
		t.lost.Add(-lost)
		t.count.Add(-n)
		t.checkZero()
	}
	return int(n)
}

// len is the number of entries.
func (t *connTable) len() int { return int(t.count.Load()) }
