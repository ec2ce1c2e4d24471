package pool

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
			tab := newConnTable(30, ttl)
			conns := testConns(3)
			keys := make([]tableKey, 60)
			for i := range keys {
				// Two shards; homes 0..15 of at most 16 slots, most of them near the end.
				keys[i] = tableKey{s: "k" + strconv.Itoa(i), h: uint64(r.IntN(2)) + tableShards*uint64(13+r.IntN(4)+16*r.IntN(2))}
			}
			model := map[tableKey]tableEntry{}
			lostIn := func() int {
				n := 0
				for _, e := range model {
					if e.lost {
						n++
					}
				}
				return n
			}
			// expire removes the model's entries of shard (all shards if -1)
			// idle for longer than the TTL at now, and returns how many.
			expire := func(shard int, now int64) int {
				n := 0
				for k, e := range model {
					if (shard < 0 || int(k.h%tableShards) == shard) && now-e.touched > ttl {
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
					e := tableEntry{sc: sc, touched: now, skip: r.IntN(10) == 0}
					want := true
					if _, ok := model[k]; !ok && len(model) >= int(tab.max) {
						want = expire(int(k.h%tableShards), now) > 0 && len(model) < int(tab.max)
					}
					require.Equal(t, want, tab.put(k, e), "step %d put %v", step, k)
					if want {
						model[k] = e
					}
				case op < 60:
					got, ok := tab.get(k, now)
					want, wok := model[k]
					if wok && now-want.touched > ttl {
						delete(model, k)
						wok = false
					}
					require.Equal(t, wok, ok, "step %d get %v", step, k)
					if ok {
						want.touched = now
						model[k] = want
						assert.Equal(t, want.sc, got.sc)
						assert.Equal(t, want.skip, got.skip)
						assert.Equal(t, want.lost, got.lost)
					}
				case op < 85:
					got, ok := tab.del(k)
					want, wok := model[k]
					delete(model, k)
					require.Equal(t, wok, ok, "step %d del %v", step, k)
					if ok {
						assert.Equal(t, want.sc, got.sc)
						assert.Equal(t, want.lost, got.lost)
					}
				case op < 92:
					tab.markKeyLost(k, sc)
					if e, ok := model[k]; ok && e.sc == sc && !e.skip {
						e.lost = true
						model[k] = e
					}
				case op < 94:
					tab.markLost(sc)
					for k, e := range model {
						if e.sc == sc && !e.skip {
							e.lost = true
							model[k] = e
						}
					}
				default:
					require.Equal(t, expire(-1, now), tab.sweep(now), "step %d sweep", step)
				}
				require.Equal(t, len(model), tab.len(), "step %d", step)
				require.Equal(t, len(model)-lostIn(), tab.live(), "step %d", step)
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
	tab := newConnTable(10, time.Minute)
	sc := testConns(2)
	k := tab.key("req")
	require.True(t, tab.put(k, tableEntry{sc: sc[0], touched: 1}))
	tab.markLost(sc[0])
	assert.Equal(t, 0, tab.live())
	require.True(t, tab.put(k, tableEntry{sc: sc[1], touched: 2}))
	assert.Equal(t, 1, tab.live())
	_, ok := tab.del(k)
	require.True(t, ok)
	assert.Equal(t, 0, tab.live())
	assert.Equal(t, 0, tab.len())
}

// TestAgentSet looks agents up by id in sets small enough to scan and
// large enough to hash.
func TestAgentSet(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, maxScan, maxScan + 1, 3 * maxScan} {
		m := map[string]*agent{}
		for i := range n {
			id := "agent-" + strconv.Itoa(i)
			m[id] = &agent{id: id}
		}
		s := newAgentSet(m)
		for id, a := range m {
			assert.Same(t, a, s.get(id), "%d agents, %s", n, id)
		}
		assert.Nil(t, s.get("agent-x"), "%d agents", n)
		assert.Nil(t, s.get(""), "%d agents", n)
	}
}
