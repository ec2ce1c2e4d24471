package affinity

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTables measures the table against standard structures
// on one request's table work: pin on headers, look up on a body chunk,
// look up and unpin on request_complete.

// tableOps is the per-event work of the affinity table.
type tableOps interface {
	Put(k Key, e Entry[*conn]) bool
	Get(k Key, now int64) (Entry[*conn], bool)
	Del(k Key) (Entry[*conn], bool)
	Key(s string) Key
}

// mapTable is Table[*conn]'s per-event work on sharded mutex+maps.
type mapTable struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [nShards]struct {
		mu sync.Mutex
		m  map[string]Entry[*conn]
		_  [48]byte
	}
}

func newMapTable() *mapTable {
	t := &mapTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]Entry[*conn])
	}
	return t
}

func (t *mapTable) Key(s string) Key { return Key{s: s, h: maphash.String(t.seed, s)} }

func (t *mapTable) Put(k Key, e Entry[*conn]) bool {
	s := &t.shards[k.h%nShards]
	s.mu.Lock()
	if _, ok := s.m[k.s]; !ok {
		t.count.Add(1)
	}
	s.m[k.s] = e
	s.mu.Unlock()
	return true
}

func (t *mapTable) Get(k Key, now int64) (Entry[*conn], bool) {
	s := &t.shards[k.h%nShards]
	s.mu.Lock()
	e, ok := s.m[k.s]
	if ok {
		e.Touched = now
		s.m[k.s] = e
	}
	s.mu.Unlock()
	return e, ok
}

func (t *mapTable) Del(k Key) (Entry[*conn], bool) {
	s := &t.shards[k.h%nShards]
	s.mu.Lock()
	e, ok := s.m[k.s]
	if ok {
		delete(s.m, k.s)
		t.count.Add(-1)
	}
	s.mu.Unlock()
	return e, ok
}

// syncMapTable is the same on a sync.Map (no touch on get: sync.Map has
// no cheap update in place).
type syncMapTable struct {
	m     sync.Map
	count atomic.Int64
}

func (t *syncMapTable) Key(s string) Key { return Key{s: s} }

func (t *syncMapTable) Put(k Key, e Entry[*conn]) bool {
	if _, loaded := t.m.Swap(k.s, e); !loaded {
		t.count.Add(1)
	}
	return true
}

func (t *syncMapTable) Get(k Key, _ int64) (Entry[*conn], bool) {
	v, ok := t.m.Load(k.s)
	if !ok {
		return Entry[*conn]{}, false
	}
	return v.(Entry[*conn]), true
}

func (t *syncMapTable) Del(k Key) (Entry[*conn], bool) {
	v, ok := t.m.LoadAndDelete(k.s)
	if !ok {
		return Entry[*conn]{}, false
	}
	t.count.Add(-1)
	return v.(Entry[*conn]), true
}

func BenchmarkTables(b *testing.B) {
	keys := make([]string, 1<<14)
	for i := range keys {
		keys[i] = "req-" + strconv.Itoa(i)
	}
	sc := &conn{}
	for _, tc := range []struct {
		name string
		new  func() tableOps
	}{
		{"Table[*conn]", func() tableOps { return New[*conn](100_000, time.Hour) }},
		{"mutex_map", func() tableOps { return newMapTable() }},
		{"sync_map", func() tableOps { return &syncMapTable{} }},
	} {
		request := func(t tableOps, s string, now int64) {
			k := t.Key(s)
			t.Put(k, Entry[*conn]{Conn: sc, Touched: now})
			t.Get(t.Key(s), now)
			t.Get(t.Key(s), now)
			t.Del(k)
		}
		b.Run(tc.name, func(b *testing.B) {
			t := tc.new()
			for i := range b.N {
				request(t, keys[i%len(keys)], int64(i))
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			t := tc.new()
			var next atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					request(t, keys[i%uint64(len(keys))], int64(i))
				}
			})
		})
	}
}
