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
// concurrent use; each shard has its own lock, held only for table work.
//
// A key is hashed once, into a [tableKey], and that one hash picks the
// shard and the slot: the events of a request hash their correlation id
// once each, however many table operations they do.
//
// BenchmarkTables, one request's work (pin, two lookups, unpin), median
// of 5 alternating runs on a loaded 2-core VM: this table 565 ns serial,
// 490 parallel; 64 maps under mutexes, the natural replacement (tried in
// the pool itself), 1044 and 578; sync.Map allocates 3 times.
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

// tableKey is a key with its hash, from [connTable.key].
type tableKey struct {
	s string
	h uint64
}

// tableShard is an open-addressing hash table with linear probing: slots
// is a power of two long (nil until the first entry) and at most half
// full, so a lookup usually reads one slot.
type tableShard struct {
	mu    sync.Mutex // mu guards slots and n
	slots []tableSlot
	n     int
	_     [24]byte // keep shards on separate cache lines
}

type tableSlot struct {
	h   uint64
	key string
	e   tableEntry
}

type tableEntry struct {
	sc      *SubConn
	touched int64 // pool clock (nanoseconds) of the last use
	// skip marks a request the pool answered without the agent (fail-open
	// on its headers): its remaining events skip the agent too.
	skip bool
	// lost marks a request whose connection died.
	lost bool
	// used marks a slot that holds an entry.
	used bool
}

// minSlots is the size of a shard's first slots.
const minSlots = 8

func newConnTable(maxEntries int, ttl time.Duration) *connTable {
	return &connTable{max: int64(maxEntries), ttl: int64(ttl), seed: maphash.MakeSeed()}
}

// key hashes s for the table's operations.
func (t *connTable) key(s string) tableKey { return tableKey{s: s, h: maphash.String(t.seed, s)} }

// The low bits of a hash pick the shard, the bits above them the slot.
func (t *connTable) shard(k tableKey) *tableShard { return &t.shards[k.h%tableShards] }

func (s *tableShard) home(h uint64) int { return int(h/tableShards) & (len(s.slots) - 1) }

// find returns the index of k's slot, or -1.
func (s *tableShard) find(k tableKey) int {
	if s.n == 0 {
		return -1
	}
	mask := len(s.slots) - 1
	for i := s.home(k.h); ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if !sl.e.used {
			return -1
		}
		if sl.h == k.h && sl.key == k.s {
			return i
		}
	}
}

// insert adds k, which is not in s, with e.
func (s *tableShard) insert(k tableKey, e tableEntry) {
	if (s.n+1)*2 > len(s.slots) {
		s.resize(max(minSlots, 2*len(s.slots)))
	}
	s.place(tableSlot{h: k.h, key: k.s, e: e})
	s.n++
}

// place puts sl in the first free slot from its home; there is one.
func (s *tableShard) place(sl tableSlot) {
	sl.e.used = true
	mask := len(s.slots) - 1
	i := s.home(sl.h)
	for s.slots[i].e.used {
		i = (i + 1) & mask
	}
	s.slots[i] = sl
}

func (s *tableShard) resize(n int) {
	old := s.slots
	s.slots = make([]tableSlot, n)
	for i := range old {
		if old[i].e.used {
			s.place(old[i])
		}
	}
}

// removeAt empties slot i and moves later slots of its probe run back, so
// that no lookup stops early at the hole. A slot that moves lands on an
// index at or before i in probe order: callers walking the slots in order
// must look at i again.
func (s *tableShard) removeAt(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].e.used; j = (j + 1) & mask {
		// The slot at j may move to i if its home is not in (i, j]
		// (cyclically): a lookup from its home then passes i.
		if home := s.home(s.slots[j].h); (j-home)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = tableSlot{}
	s.n--
	if len(s.slots) > minSlots && s.n*8 < len(s.slots) {
		s.resize(len(s.slots) / 2)
	}
}

// put binds key to e.sc, replacing any binding. It returns false, binding
// nothing, when the table is full.
func (t *connTable) put(k tableKey, e tableEntry) bool {
	s := t.shard(k)
	s.mu.Lock()
	if i := s.find(k); i >= 0 {
		wasLost := s.slots[i].e.lost
		e.used = true
		s.slots[i].e = e
		if wasLost != e.lost {
			// A request pinned again after its connection died.
			if wasLost {
				t.lost.Add(-1)
			} else {
				t.lost.Add(1)
			}
		}
		s.mu.Unlock()
		return true
	}
	if t.count.Load() >= t.max {
		// Reclaim this shard's expired entries before refusing.
		removed := t.sweepShardLocked(s, e.touched)
		if removed == 0 || t.count.Load() >= t.max {
			s.mu.Unlock()
			return false
		}
	}
	t.count.Add(1)
	s.insert(k, e)
	s.mu.Unlock()
	return true
}

// get returns key's entry and marks it used at now; an expired entry is
// removed and not returned.
func (t *connTable) get(k tableKey, now int64) (tableEntry, bool) {
	s := t.shard(k)
	s.mu.Lock()
	i := s.find(k)
	if i < 0 {
		s.mu.Unlock()
		return tableEntry{}, false
	}
	e := &s.slots[i].e
	if now-e.touched > t.ttl {
		gone := *e
		s.removeAt(i)
		s.mu.Unlock()
		t.removed(gone)
		return tableEntry{}, false
	}
	e.touched = now
	got := *e
	s.mu.Unlock()
	return got, true
}

// del removes key and returns what it was bound to.
func (t *connTable) del(k tableKey) (tableEntry, bool) {
	s := t.shard(k)
	s.mu.Lock()
	i := s.find(k)
	if i < 0 {
		s.mu.Unlock()
		return tableEntry{}, false
	}
	e := s.slots[i].e
	s.removeAt(i)
	s.mu.Unlock()
	t.removed(e)
	return e, true
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
		var k int64
		for j := range s.slots {
			if e := &s.slots[j].e; e.used && e.sc == sc && !e.lost && !e.skip {
				e.lost = true
				k++
			}
		}
		// Counted under the shard's lock, as markKeyLost does: whoever
		// finds an entry flagged finds it counted.
		t.lost.Add(k)
		s.mu.Unlock()
		n += k
	}
	if n > 0 {
		t.checkZero()
	}
}

// markKeyLost flags key's entry if it is bound to sc, whose connection died.
func (t *connTable) markKeyLost(k tableKey, sc *SubConn) {
	s := t.shard(k)
	s.mu.Lock()
	ok := false
	if i := s.find(k); i >= 0 {
		if e := &s.slots[i].e; e.sc == sc && !e.lost && !e.skip {
			e.lost = true
			t.lost.Add(1)
			ok = true
		}
	}
	s.mu.Unlock()
	if ok {
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
	for i := 0; i < len(s.slots); {
		e := &s.slots[i].e
		if !e.used || now-e.touched <= t.ttl {
			i++
			continue
		}
		n++
		if e.lost {
			lost++
		}
		size := len(s.slots)
		s.removeAt(i)
		if len(s.slots) != size {
			// Resized: the survivors moved, look at them all again (none
			// of them expired).
			i = 0
		}
		// Otherwise slot i may hold a moved entry: look at it again.
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
