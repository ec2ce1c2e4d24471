package cache_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
)

// TestMemoryBound: a million distinct decisions through a store bounded at
// 10,000 keep its memory flat (100,000 without AGENTWIRE_LONG).
func TestMemoryBound(t *testing.T) {
	n := 100_000
	if os.Getenv("AGENTWIRE_LONG") != "" {
		n = 1_000_000
	}
	const bound = 10_000
	now := time.Unix(1_700_000_000, 0)
	s, err := cache.NewMemoryStore(bound, func() time.Time { return now })
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	resp := agent.AllowSetRequestHeader("x-waf", "pass")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		require.NoError(t, s.Set(ctx, "waf", cache.Key(sha256.Sum256(b[:])), &cache.Entry{
			Response: resp, Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour), Tags: []string{"t"},
		}))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d decisions through a %d bound: heap grew %.1f MiB", n, bound, float64(grown)/(1<<20))
	// About 300 bytes an entry (key, entry, generation keys, otter's node)
	// at the bound, plus otter's fixed tables: far from n entries' worth.
	assert.Less(t, grown, int64(bound*1024+8<<20), "memory follows the bound, not the keys")
}
