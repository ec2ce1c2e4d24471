package cache

import (
	"encoding/binary"
	"hash/maphash"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
)

// TestMemoryBound: a million distinct decisions through a layer bounded at
// 10,000 keep its memory flat (100,000 without AGENTWIRE_LONG).
func TestMemoryBound(t *testing.T) {
	n := 100_000
	if os.Getenv("AGENTWIRE_LONG") != "" {
		n = 1_000_000
	}
	const bound = 10_000
	now := time.Unix(1_700_000_000, 0)
	l, err := newLocal(bound, func() time.Time { return now })
	require.NoError(t, err)
	defer l.close()
	resp := agent.AllowSetRequestHeader("x-waf", "pass")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		var b [32]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		l.set("waf", b[:], &Entry{
			Response: resp, Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour), Tags: []string{"t"},
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d decisions through a %d bound: heap grew %.1f MiB", n, bound, float64(grown)/(1<<20))
	// About 300 bytes an entry (key, entry, generation keys, otter's node)
	// at the bound, plus otter's fixed tables: far from n entries' worth.
	assert.Less(t, grown, int64(bound*1024+8<<20), "memory follows the bound, not the keys")
}

// TestLocalFullKey: an entry found under a key's hash is served only if
// its full key is the request's (a hash collision is a miss).
func TestLocalFullKey(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l, err := newLocal(100, func() time.Time { return now })
	require.NoError(t, err)
	defer l.close()
	e := &Entry{Response: agent.Allow(), Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour)}
	a, b := []byte("key of request a"), []byte("key of request b")
	le := l.set("waf", b, e)
	require.Same(t, le, l.get(b))
	l.c.Set(maphash.Bytes(l.seed, a), le) // b's entry under a's hash: a collision
	assert.Nil(t, l.get(a), "a collision is a miss")
	assert.Same(t, le, l.get(b))

	l.purge("waf", nil)
	assert.Nil(t, l.get(b), "purged")
}
