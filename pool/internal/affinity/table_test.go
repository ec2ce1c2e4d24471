package affinity

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnTableModel runs random operations on a table and on a plain map
// side by side. Keys get hashes from a small set, so that they share
// shards, home slots and whole hashes, probe runs wrap around the end of
// the slots, and shards grow and shrink.
func TestConnTableModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 1))
			const ttl = 100
			tab := New[*conn](30, ttl)
			conns := testConns(3)
			keys := make([]Key, 60)
			for i := range keys {
				// Two shards; homes 0..15 of at most 16 slots, most of them near the end.
				keys[i] = Key{s: "k" + strconv.Itoa(i), h: uint64(r.IntN(2)) + nShards*uint64(13+r.IntN(4)+16*r.IntN(2))}
			}
			model := map[Key]Entry[*conn]{}
			lostIn := func() int {
				n := 0
				for _, e := range model {
					if e.Lost {
						n++
					}
				}
				return n
			}
			// expire removes the model's entries of shard (all shards if -1)
			// idle for longer than the TTL at now, and returns how many; an
			// entry used (Use) since the last sweep counts as touched now.
			expire := func(shard int, now int64) int {
				n := 0
				for k, e := range model {
					if shard >= 0 && int(k.h%nShards) != shard {
						continue
					}
					if e.seen {
						e.Touched, e.seen = now, false
						model[k] = e
					}
					if now-e.Touched > ttl {
						delete(model, k)
						n++
					}
				}
				return n
			}
			now := int64(1000)
			for step := range 5000 {
				now += int64(r.IntN(10))
				k := keys[r.IntN(len(keys))]
				sc := conns[r.IntN(len(conns))]
				switch op := r.IntN(100); {
				case op < 35:
					e := Entry[*conn]{Conn: sc, Touched: now, Skip: r.IntN(10) == 0}
					want := true
					if _, ok := model[k]; !ok && len(model) >= int(tab.max) {
						want = expire(int(k.h%nShards), now) > 0 && len(model) < int(tab.max)
					}
					require.Equal(t, want, tab.Put(k, e), "step %d put %v", step, k)
					if want {
						model[k] = e
					}
				case op < 50:
					got, ok := tab.Get(k, now)
					want, wok := model[k]
					if wok && !want.seen && now-want.Touched > ttl {
						delete(model, k)
						wok = false
					}
					require.Equal(t, wok, ok, "step %d get %v", step, k)
					if ok {
						want.Touched, want.seen = now, false
						model[k] = want
						assert.Equal(t, want.Conn, got.Conn)
						assert.Equal(t, want.Skip, got.Skip)
						assert.Equal(t, want.Lost, got.Lost)
					}
				case op < 60:
					// Use reads no clock: it finds an entry until a sweep
					// removes it, and marks it used for the next sweep.
					got, ok := tab.Use(k)
					want, wok := model[k]
					require.Equal(t, wok, ok, "step %d use %v", step, k)
					if ok {
						want.seen = true
						model[k] = want
						assert.Equal(t, want.Conn, got.Conn)
						assert.Equal(t, want.Skip, got.Skip)
						assert.Equal(t, want.Lost, got.Lost)
					}
				case op < 85:
					got, ok := tab.Del(k)
					want, wok := model[k]
					delete(model, k)
					require.Equal(t, wok, ok, "step %d del %v", step, k)
					if ok {
						assert.Equal(t, want.Conn, got.Conn)
						assert.Equal(t, want.Lost, got.Lost)
					}
				case op < 92:
					tab.MarkKeyLost(k, sc)
					if e, ok := model[k]; ok && e.Conn == sc && !e.Skip {
						e.Lost = true
						model[k] = e
					}
				case op < 94:
					tab.MarkLost(sc)
					for k, e := range model {
						if e.Conn == sc && !e.Skip {
							e.Lost = true
							model[k] = e
						}
					}
				default:
					require.Equal(t, expire(-1, now), tab.Sweep(now), "step %d sweep", step)
				}
				require.Equal(t, len(model), tab.Len(), "step %d", step)
				require.Equal(t, len(model)-lostIn(), tab.Live(), "step %d", step)
				n := 0
				for i := range tab.shards {
					s := &tab.shards[i]
					used := 0
					for _, sl := range s.slots {
						if sl.e.used {
							used++
						}
					}
					require.Equal(t, s.n, used, "step %d shard %d", step, i)
					require.True(t, len(s.slots) == 0 || s.n*2 <= len(s.slots), "step %d shard %d over half full", step, i)
					n += used
				}
				require.Equal(t, len(model), n, "step %d", step)
			}
		})
	}
}

// TestConnTableRepin: a request pinned again after its connection died is
// open work again.
func TestConnTableRepin(t *testing.T) {
	t.Parallel()
	tab := New[*conn](10, time.Minute)
	sc := testConns(2)
	k := tab.Key("req")
	require.True(t, tab.Put(k, Entry[*conn]{Conn: sc[0], Touched: 1}))
	tab.MarkLost(sc[0])
	assert.Equal(t, 0, tab.Live())
	require.True(t, tab.Put(k, Entry[*conn]{Conn: sc[1], Touched: 2}))
	assert.Equal(t, 1, tab.Live())
	_, ok := tab.Del(k)
	require.True(t, ok)
	assert.Equal(t, 0, tab.Live())
	assert.Equal(t, 0, tab.Len())
}

func TestConnTable(t *testing.T) {
	t.Parallel()
	tab := New[*conn](3, time.Second)
	zero := 0
	tab.OnZero = func() { zero++ }
	sc := testConns(2)
	now := int64(1e12)
	require.True(t, tab.Put(tab.Key("a"), Entry[*conn]{Conn: sc[0], Touched: now}))
	require.True(t, tab.Put(tab.Key("b"), Entry[*conn]{Conn: sc[1], Touched: now}))
	require.True(t, tab.Put(tab.Key("a"), Entry[*conn]{Conn: sc[1], Touched: now}), "rebinding an existing key")
	require.True(t, tab.Put(tab.Key("c"), Entry[*conn]{Conn: sc[0], Touched: now}))
	assert.False(t, tab.Put(tab.Key("d"), Entry[*conn]{Conn: sc[0], Touched: now}), "full")
	assert.Equal(t, 3, tab.Len())

	e, ok := tab.Get(tab.Key("a"), now+int64(500*time.Millisecond))
	require.True(t, ok)
	assert.Same(t, sc[1], e.Conn)
	// "a" was touched, "b" and "c" expire.
	assert.Equal(t, 2, tab.Sweep(now+int64(1200*time.Millisecond)))
	_, ok = tab.Get(tab.Key("b"), now)
	assert.False(t, ok)
	_, ok = tab.Get(tab.Key("a"), now+int64(1600*time.Millisecond))
	assert.False(t, ok, "expired on read")
	assert.Equal(t, 0, tab.Len())
	assert.Equal(t, 1, zero)

	// A full table reclaims expired entries of the shard before refusing.
	small := New[*conn](1, time.Second)
	require.True(t, small.Put(small.Key("x"), Entry[*conn]{Conn: sc[0], Touched: now}))
	assert.False(t, small.Put(small.Key("x2"), Entry[*conn]{Conn: sc[0], Touched: now}))
	_, ok = small.Del(small.Key("x"))
	assert.True(t, ok)
	_, ok = small.Del(small.Key("x"))
	assert.False(t, ok)
	assert.True(t, small.Put(small.Key("x2"), Entry[*conn]{Conn: sc[0], Touched: now}))
}

// conn stands for the pool's connections.
type conn struct{ n int }

func testConns(n int) []*conn {
	out := make([]*conn, n)
	for i := range out {
		out[i] = &conn{n: i}
	}
	return out
}
