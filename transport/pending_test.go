package transport

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPendingTable checks the table against a map and a slice in send
// order, with calls that stay long enough for their slots to be reused.
func TestPendingTable(t *testing.T) {
	t.Parallel()
	var (
		tab   pendingTable
		want  = map[uint64]*call{}
		order []*call
		next  uint64
	)
	r := rand.New(rand.NewPCG(5, 6))
	check := func() {
		t.Helper()
		require.Equal(t, len(want), tab.len())
		var got []*call
		for c := tab.oldest; c != nil; c = c.next {
			got = append(got, c)
		}
		require.Equal(t, order, got, "send order")
		for id, c := range want {
			require.Same(t, c, tab.get(id))
			require.True(t, tab.has(c))
		}
	}
	for step := range 20000 {
		if len(order) == 0 || r.IntN(100) < 52 {
			next++
			c := &call{id: next}
			tab.put(c)
			want[c.id] = c
			order = append(order, c)
		} else {
			// Mostly the oldest go first; some stay for thousands of ids.
			i := 0
			if r.IntN(4) > 0 {
				i = r.IntN(len(order))
			}
			if r.IntN(50) == 0 {
				i = len(order) - 1
			}
			c := order[i]
			tab.remove(c)
			delete(want, c.id)
			order = append(order[:i:i], order[i+1:]...)
			assert.Nil(t, tab.get(c.id))
		}
		if step%97 == 0 {
			check()
		}
	}
	check()
	assert.NotEmpty(t, tab.overflow, "no call outlived its slot: the overflow went untested")
	calls := tab.clear()
	assert.Equal(t, order, calls)
	assert.Equal(t, 0, tab.len())
	assert.Nil(t, tab.oldest)
	for _, c := range calls {
		assert.Nil(t, tab.get(c.id))
	}
}
