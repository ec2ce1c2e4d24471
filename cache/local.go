package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// local is the in-process layer: an otter cache bounded by count, with
// per-entry expiry, keyed by a seeded 64-bit hash of the full key. A hit
// compares the full key, so that a hash collision is a miss, never
// another request's decision. Purges bump generations instead of
// scanning: an entry is valid while its agent's and its tags' generations
// are those it was stored under.
type local struct {
	c    *otter.Cache[uint64, *localEntry]
	seed maphash.Seed
	now  func() time.Time

	mu   sync.Mutex                // guards gens; the counters are atomic
	gens map[string]*atomic.Uint64 // agent id, or agent id + "\x00" + tag
}

type localEntry struct {
	e    *Entry
	key  string           // the full key
	gens []*atomic.Uint64 // the agent's generation, then each tag's
	at   []uint64         // their values when stored
	copy answerShape      // how hits copy e.Response
}

func newLocal(maxEntries int, now func() time.Time) (*local, error) {
	l := &local{seed: maphash.MakeSeed(), now: now, gens: map[string]*atomic.Uint64{}}
	c, err := otter.New(&otter.Options[uint64, *localEntry]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[uint64, *localEntry]) time.Duration {
			return max(e.Value.e.StaleUntil.Sub(l.now()), time.Millisecond)
		}),
	})
	if err != nil {
		return nil, err
	}
	l.c = c
	return l, nil
}

// get returns the valid entry stored under the full key k, nil if none.
func (l *local) get(k []byte) *localEntry {
	h := maphash.Bytes(l.seed, k)
	le, ok := l.c.GetIfPresent(h)
	if !ok || le.key != string(k) {
		return nil
	}
	for i, g := range le.gens {
		if g.Load() != le.at[i] {
			l.c.Invalidate(h)
			return nil
		}
	}
	return le
}

// set stores e under the full key k for agentID and returns its entry.
func (l *local) set(agentID string, k []byte, e *Entry) *localEntry {
	le := &localEntry{e: e, key: string(k), copy: shapeOf(e.Response)}
	le.gens = make([]*atomic.Uint64, 0, 1+len(e.Tags))
	l.mu.Lock()
	le.gens = append(le.gens, l.gen(agentID))
	for _, tag := range e.Tags {
		le.gens = append(le.gens, l.gen(agentID+"\x00"+tag))
	}
	l.mu.Unlock()
	le.at = make([]uint64, len(le.gens))
	for i, g := range le.gens {
		le.at[i] = g.Load()
	}
	l.c.Set(maphash.Bytes(l.seed, k), le)
	return le
}

// gen returns the generation counter named k; l.mu must be held.
func (l *local) gen(k string) *atomic.Uint64 {
	g := l.gens[k]
	if g == nil {
		g = new(atomic.Uint64)
		l.gens[k] = g
	}
	return g
}

// purge drops agentID's entries carrying any of tags, or all of them.
func (l *local) purge(agentID string, tags []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(tags) == 0 {
		l.gen(agentID).Add(1)
		return
	}
	for _, tag := range tags {
		l.gen(agentID + "\x00" + tag).Add(1)
	}
}

// close stops the layer's expiry goroutine.
func (l *local) close() { l.c.StopAllGoroutines() }
