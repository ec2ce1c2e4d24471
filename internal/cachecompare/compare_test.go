// Package cachecompare measures the in-process cache libraries considered
// for agentwire's decision cache, in a module of its own so that the one
// not chosen never reaches the SDK's go.mod. Run:
//
//	cd internal/cachecompare && go test -bench . -benchmem
package cachecompare

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
)

// value stands for a cached decision: about what one costs in memory.
type value struct {
	resp    [96]byte
	expires int64
}

const entries = 100_000

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		sum := sha256.Sum256(b[:])
		out[i] = string(sum[:])
	}
	return out
}

type cache interface {
	get(k string) (*value, bool)
	set(k string, v *value)
	close()
}

type otterCache struct{ c *otter.Cache[string, *value] }

func newOtter(n int) cache {
	c := otter.Must(&otter.Options[string, *value]{MaximumSize: n, ExpiryCalculator: otter.ExpiryWriting[string, *value](time.Minute)})
	return otterCache{c}
}
func (o otterCache) get(k string) (*value, bool) { return o.c.GetIfPresent(k) }
func (o otterCache) set(k string, v *value)      { o.c.Set(k, v) }
func (o otterCache) close()                      {}

type ristrettoCache struct {
	c *ristretto.Cache[string, *value]
}

func newRistretto(n int) cache {
	c, err := ristretto.NewCache(&ristretto.Config[string, *value]{NumCounters: int64(n) * 10, MaxCost: int64(n), BufferItems: 64})
	if err != nil {
		panic(err)
	}
	return ristrettoCache{c}
}
func (r ristrettoCache) get(k string) (*value, bool) { return r.c.Get(k) }
func (r ristrettoCache) set(k string, v *value) {
	r.c.SetWithTTL(k, v, 1, time.Minute)
}
func (r ristrettoCache) close() { r.c.Close() }

var impls = []struct {
	name string
	new  func(int) cache
}{{"otter", newOtter}, {"ristretto", newRistretto}}

// BenchmarkHit: parallel reads of keys that are present (the cache-hit path).
func BenchmarkHit(b *testing.B) {
	ks := keys(entries)
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.new(entries * 2)
			defer c.close()
			for _, k := range ks {
				c.set(k, &value{})
			}
			if r, ok := c.(ristrettoCache); ok {
				r.c.Wait()
			}
			var i atomic.Uint64
			var miss atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n := i.Add(1) * 7919
				for pb.Next() {
					n++
					if _, ok := c.get(ks[n%entries]); !ok {
						miss.Add(1)
					}
				}
			})
			b.ReportMetric(float64(miss.Load())/float64(b.N), "miss/op")
		})
	}
}

// BenchmarkChurn: every operation stores a new key into a full cache
// (1M distinct keys through a 100k bound), then reads a recent one.
func BenchmarkChurn(b *testing.B) {
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.new(entries)
			defer c.close()
			var i atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := i.Add(1)
					k := strconv.FormatUint(n, 36)
					c.set(k, &value{})
					c.get(k)
				}
			})
		})
	}
}

// TestBound: a million distinct keys through each cache keep it within its
// bound (memory stays flat).
func TestBound(t *testing.T) {
	for _, impl := range impls {
		c := impl.new(entries)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range 1_000_000 {
			c.set(strconv.Itoa(i), &value{})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		t.Logf("%s: heap after 1M keys through a %d bound: %.1f MiB", impl.name, entries, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
		c.close()
	}
}
