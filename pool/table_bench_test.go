package pool

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTables measures the affinity table against standard structures
// on one request's table work: pin on headers, look up on a body chunk,
// look up and unpin on request_complete.

// tableOps is the per-event work of the affinity table.
type tableOps interface {
	put(k tableKey, e tableEntry) bool
	get(k tableKey, now int64) (tableEntry, bool)
	del(k tableKey) (tableEntry, bool)
	key(s string) tableKey
}

// mapTable is connTable's per-event work on sharded mutex+maps.
type mapTable struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [tableShards]struct {
		mu sync.Mutex
		m  map[string]tableEntry
		_  [48]byte
	}
}

func newMapTable() *mapTable {
	t := &mapTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]tableEntry)
	}
	return t
}

func (t *mapTable) key(s string) tableKey { return tableKey{s: s, h: maphash.String(t.seed, s)} }

func (t *mapTable) put(k tableKey, e tableEntry) bool {
	s := &t.shards[k.h%tableShards]
	s.mu.Lock()
	if _, ok := s.m[k.s]; !ok {
		t.count.Add(1)
	}
	s.m[k.s] = e
	s.mu.Unlock()
	return true
}

func (t *mapTable) get(k tableKey, now int64) (tableEntry, bool) {
	s := &t.shards[k.h%tableShards]
	s.mu.Lock()
	e, ok := s.m[k.s]
	if ok {
		e.touched = now
		s.m[k.s] = e
	}
	s.mu.Unlock()
	return e, ok
}

func (t *mapTable) del(k tableKey) (tableEntry, bool) {
	s := &t.shards[k.h%tableShards]
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

func (t *syncMapTable) key(s string) tableKey { return tableKey{s: s} }

func (t *syncMapTable) put(k tableKey, e tableEntry) bool {
	if _, loaded := t.m.Swap(k.s, e); !loaded {
		t.count.Add(1)
	}
	return true
}

func (t *syncMapTable) get(k tableKey, _ int64) (tableEntry, bool) {
	v, ok := t.m.Load(k.s)
	if !ok {
		return tableEntry{}, false
	}
	return v.(tableEntry), true
}

func (t *syncMapTable) del(k tableKey) (tableEntry, bool) {
	v, ok := t.m.LoadAndDelete(k.s)
	if !ok {
		return tableEntry{}, false
	}
	t.count.Add(-1)
	return v.(tableEntry), true
}

func BenchmarkTables(b *testing.B) {
	keys := make([]string, 1<<14)
	for i := range keys {
		keys[i] = "req-" + strconv.Itoa(i)
	}
	sc := &SubConn{}
	for _, tc := range []struct {
		name string
		new  func() tableOps
	}{
		{"connTable", func() tableOps { return newConnTable(DefaultMaxAffinities, time.Hour) }},
		{"mutex_map", func() tableOps { return newMapTable() }},
		{"sync_map", func() tableOps { return &syncMapTable{} }},
	} {
		request := func(t tableOps, s string, now int64) {
			k := t.key(s)
			t.put(k, tableEntry{sc: sc, touched: now})
			t.get(t.key(s), now)
			t.get(t.key(s), now)
			t.del(k)
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
