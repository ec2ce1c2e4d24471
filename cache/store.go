package cache

import (
	"context"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Entry is one cached decision.
type Entry struct {
	// Response is the agent's answer, without its directive. Nobody
	// writes to it once stored: hits return copies.
	Response *agentv2.AgentResponse
	// Tags and BodyNotInspected are the directive's.
	Tags             []string
	BodyNotInspected bool
	// Expires ends the fresh period; StaleUntil the stale one (equal to
	// Expires without a stale window).
	Expires, StaleUntil time.Time
}

// Store holds cached decisions by key. Implementations are safe for
// concurrent use; an error is a failed lookup or write, which the
// interceptor counts and treats as a miss (a cache outage never fails a
// request).
type Store interface {
	// Get returns the entry stored under key for agentID, nil if none.
	Get(ctx context.Context, agentID string, key Key) (*Entry, error)
	// Set stores e under key for agentID until e.StaleUntil.
	Set(ctx context.Context, agentID string, key Key, e *Entry) error
	// Purge drops agentID's entries carrying any of tags, or all of
	// agentID's entries when tags is empty.
	Purge(ctx context.Context, agentID string, tags []string) error
	// AddScope records a scope agentID's decisions use, and Scopes returns
	// them, newest first, so that a proxy can look up decisions another
	// proxy stored. A store only one proxy uses may keep none.
	AddScope(ctx context.Context, agentID string, s *agentv2.CacheScope) error
	Scopes(ctx context.Context, agentID string) ([]*agentv2.CacheScope, error)
}

// memory is the in-process Store: an otter cache bounded by count, with
// per-entry expiry. Purges bump generations instead of scanning: an entry
// is valid while its agent's and its tags' generations are those it was
// stored under.
type memory struct {
	c   *otter.Cache[Key, *memEntry]
	now func() time.Time

	mu   sync.RWMutex      // guards gens
	gens map[string]uint64 // agent id, or agent id + "\x00" + tag -> generation
}

type memEntry struct {
	e    *Entry
	keys []string // generation keys: the agent's, then each tag's
	gens []uint64 // their generations when stored
}

// MemoryStore is the in-process Store: a Store with Close.
type MemoryStore interface {
	Store
	// Close stops the store's expiry goroutine.
	Close()
}

// NewMemoryStore returns the in-process Store, holding at most maxEntries
// decisions (the least valuable go first). Close it when done.
func NewMemoryStore(maxEntries int, now func() time.Time) (MemoryStore, error) {
	m := &memory{now: now, gens: map[string]uint64{}}
	c, err := otter.New(&otter.Options[Key, *memEntry]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[Key, *memEntry]) time.Duration {
			return max(e.Value.e.StaleUntil.Sub(m.now()), time.Millisecond)
		}),
	})
	if err != nil {
		return nil, err
	}
	m.c = c
	return m, nil
}

func (m *memory) Get(_ context.Context, _ string, key Key) (*Entry, error) {
	me, ok := m.c.GetIfPresent(key)
	if !ok {
		return nil, nil
	}
	valid := true
	m.mu.RLock()
	for i, k := range me.keys {
		valid = valid && me.gens[i] == m.gens[k]
	}
	m.mu.RUnlock()
	if !valid {
		m.c.Invalidate(key)
		return nil, nil
	}
	return me.e, nil
}

func (m *memory) Set(_ context.Context, agentID string, key Key, e *Entry) error {
	me := &memEntry{e: e, keys: []string{agentID}}
	for _, tag := range e.Tags {
		me.keys = append(me.keys, agentID+"\x00"+tag)
	}
	me.gens = make([]uint64, len(me.keys))
	m.mu.RLock()
	for i, k := range me.keys {
		me.gens[i] = m.gens[k]
	}
	m.mu.RUnlock()
	m.c.Set(key, me)
	return nil
}

func (m *memory) Purge(_ context.Context, agentID string, tags []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(tags) == 0 {
		m.gens[agentID]++
		return nil
	}
	for _, tag := range tags {
		m.gens[agentID+"\x00"+tag]++
	}
	return nil
}

func (m *memory) Close() { m.c.StopAllGoroutines() }

// AddScope does nothing: the interceptor keeps the scopes it saw.
func (m *memory) AddScope(context.Context, string, *agentv2.CacheScope) error { return nil }

// Scopes returns none: the interceptor keeps the scopes it saw.
func (m *memory) Scopes(context.Context, string) ([]*agentv2.CacheScope, error) { return nil, nil }
