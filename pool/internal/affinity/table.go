// Package affinity is the pool's table of open requests and sticky
// sessions: which connection holds each, bounded in size, with entries
// that expire when idle and entries whose connection died kept, flagged
// lost, until the request ends.
package affinity

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// nShards splits a Table so that requests rarely share a lock.
const nShards = 64

// Table maps string keys (correlation ids, session ids) to connections of
// type C, bounded in size, with entries that expire when idle. It is safe
// for concurrent use; each shard has its own lock, held only for table
// work.
//
// A key is hashed once, into a [Key], and that one hash picks the shard
// and the slot: the events of a request hash their correlation id
// once each, however many table operations they do.
//
// BenchmarkTables, one request's work (pin, two lookups, unpin), median
// of 5 alternating runs on a loaded 2-core VM: this table 565 ns serial,
// 490 parallel; 64 maps under mutexes, the natural replacement (tried in
// the pool itself), 1044 and 578; sync.Map allocates 3 times.
type Table[C comparable] struct {
	max   int64
	ttl   int64 // nanoseconds
	seed  maphash.Seed
	count atomic.Int64
	// lost counts entries whose connection died: kept so that the rest of
	// the request fails clearly, but no longer open work.
	lost atomic.Int64
	// OnZero, if set before use, is called when the last live entry goes.
	OnZero func()
	shards [nShards]tableShard[C]
}

// Key is a key with its hash, from [Table.Key].
type Key struct {
	s string
	h uint64
}

// String returns the key.
func (k Key) String() string { return k.s }

// tableShard is an open-addressing hash table with linear probing: slots
// is a power of two long (nil until the first entry) and at most half
// full, so a lookup usually reads one slot.
type tableShard[C comparable] struct {
	mu    sync.Mutex // mu guards slots and n
	slots []tableSlot[C]
	n     int
	_     [24]byte // keep shards on separate cache lines
}

type tableSlot[C comparable] struct {
	h   uint64
	key string
	e   Entry[C]
}

// Entry is what a key is bound to.
type Entry[C comparable] struct {
	Conn    C
	Touched int64 // clock (nanoseconds) of the last use
	// Skip marks a request the pool answered without the agent (fail-open
	// on its headers): its remaining events skip the agent too.
	Skip bool
	// Lost marks a request whose connection died.
	Lost bool
	// used marks a slot that holds an entry.
	used bool
	// seen marks an entry [Table.Use] found since the last sweep, which
	// stamps it with its own clock: a use reads no clock.
	seen bool
}

// minSlots is the size of a shard's first slots.
const minSlots = 8

// New returns a table of at most maxEntries entries that expire after ttl
// idle.
func New[C comparable](maxEntries int, ttl time.Duration) *Table[C] {
	return &Table[C]{max: int64(maxEntries), ttl: int64(ttl), seed: maphash.MakeSeed()}
}

// Key hashes s for the table's operations.
func (t *Table[C]) Key(s string) Key { return Key{s: s, h: maphash.String(t.seed, s)} }

// The low bits of a hash pick the shard, the bits above them the slot.
func (t *Table[C]) shard(k Key) *tableShard[C] { return &t.shards[k.h%nShards] }

func (s *tableShard[C]) home(h uint64) int { return int(h/nShards) & (len(s.slots) - 1) }

// locate locks k's shard and returns it with the index of k's slot, or -1;
// the caller unlocks the shard.
func (t *Table[C]) locate(k Key) (*tableShard[C], int) {
	s := t.shard(k)
	s.mu.Lock()
	return s, s.find(k)
}

// find returns the index of k's slot, or -1.
func (s *tableShard[C]) find(k Key) int {
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
func (s *tableShard[C]) insert(k Key, e Entry[C]) {
	if (s.n+1)*2 > len(s.slots) {
		s.resize(max(minSlots, 2*len(s.slots)))
	}
	s.place(tableSlot[C]{h: k.h, key: k.s, e: e})
	s.n++
}

// place puts sl in the first free slot from its home; there is one.
func (s *tableShard[C]) place(sl tableSlot[C]) {
	sl.e.used = true
	mask := len(s.slots) - 1
	i := s.home(sl.h)
	for s.slots[i].e.used {
		i = (i + 1) & mask
	}
	s.slots[i] = sl
}

func (s *tableShard[C]) resize(n int) {
	old := s.slots
	s.slots = make([]tableSlot[C], n)
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
func (s *tableShard[C]) removeAt(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].e.used; j = (j + 1) & mask {
		// The slot at j may move to i if its home is not in (i, j]
		// (cyclically): a lookup from its home then passes i.
		if home := s.home(s.slots[j].h); (j-home)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = tableSlot[C]{}
	s.n--
	if len(s.slots) > minSlots && s.n*8 < len(s.slots) {
		s.resize(len(s.slots) / 2)
	}
}

// Put binds key to e.Conn, replacing any binding. It returns false, binding
// nothing, when the table is full.
func (t *Table[C]) Put(k Key, e Entry[C]) bool {
	s, i := t.locate(k)
	if i >= 0 {
		wasLost := s.slots[i].e.Lost
		e.used = true
		s.slots[i].e = e
		if wasLost != e.Lost {
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
		removed := t.sweepShardLocked(s, e.Touched)
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

// Get returns key's entry and marks it used at now; an expired entry is
// removed and not returned.
func (t *Table[C]) Get(k Key, now int64) (Entry[C], bool) {
	s, i := t.locate(k)
	if i < 0 {
		s.mu.Unlock()
		return Entry[C]{}, false
	}
	e := &s.slots[i].e
	if !e.seen && now-e.Touched > t.ttl {
		gone := *e
		s.removeAt(i)
		s.mu.Unlock()
		t.removed(gone)
		return Entry[C]{}, false
	}
	e.Touched, e.seen = now, false
	got := *e
	s.mu.Unlock()
	return got, true
}

// Use returns key's entry and marks it used, without a clock: the next
// sweep counts it as touched then. An entry goes once idle for a TTL by
// the sweeps' clock, between one TTL and one TTL plus two sweep intervals
// after its last use, and Use finds it until then.
func (t *Table[C]) Use(k Key) (Entry[C], bool) {
	s, i := t.locate(k)
	if i < 0 {
		s.mu.Unlock()
		return Entry[C]{}, false
	}
	e := &s.slots[i].e
	e.seen = true
	got := *e
	s.mu.Unlock()
	return got, true
}

// Del removes key and returns what it was bound to.
func (t *Table[C]) Del(k Key) (Entry[C], bool) {
	s, i := t.locate(k)
	if i < 0 {
		s.mu.Unlock()
		return Entry[C]{}, false
	}
	e := s.slots[i].e
	s.removeAt(i)
	s.mu.Unlock()
	t.removed(e)
	return e, true
}

func (t *Table[C]) removed(e Entry[C]) {
	if e.Lost {
		t.lost.Add(-1)
	}
	t.count.Add(-1)
	t.checkZero()
}

func (t *Table[C]) checkZero() {
	if t.OnZero != nil && t.Live() == 0 {
		t.OnZero()
	}
}

// Live is the number of entries whose connection has not died.
func (t *Table[C]) Live() int { return int(t.count.Load() - t.lost.Load()) }

// MarkLost flags every entry bound to c, whose connection died.
func (t *Table[C]) MarkLost(c C) {
	var n int64
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		var k int64
		for j := range s.slots {
			if e := &s.slots[j].e; e.used && e.Conn == c && !e.Lost && !e.Skip {
				e.Lost = true
				k++
			}
		}
		// Counted under the shard's lock, as MarkKeyLost does: whoever
		// finds an entry flagged finds it counted.
		t.lost.Add(k)
		s.mu.Unlock()
		n += k
	}
	if n > 0 {
		t.checkZero()
	}
}

// MarkKeyLost flags key's entry if it is bound to c, whose connection died.
func (t *Table[C]) MarkKeyLost(k Key, c C) {
	s, i := t.locate(k)
	ok := false
	if i >= 0 {
		if e := &s.slots[i].e; e.Conn == c && !e.Lost && !e.Skip {
			e.Lost = true
			t.lost.Add(1)
			ok = true
		}
	}
	s.mu.Unlock()
	if ok {
		t.checkZero()
	}
}

// Sweep removes entries idle for longer than the TTL and returns how many.
func (t *Table[C]) Sweep(now int64) int {
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
func (t *Table[C]) sweepShardLocked(s *tableShard[C], now int64) int {
	var n, lost int64
	for i := 0; i < len(s.slots); {
		e := &s.slots[i].e
		if e.used && e.seen {
			e.Touched, e.seen = now, false // used since the last sweep
		}
		if !e.used || now-e.Touched <= t.ttl {
			i++
			continue
		}
		n++
		if e.Lost {
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

// Len is the number of entries.
func (t *Table[C]) Len() int { return int(t.count.Load()) }
