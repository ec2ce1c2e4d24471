package cache

import (
	"hash/maphash"
	"sync"
)

// servedSet remembers the requests answered from the cache (agent id and
// correlation id), so that their later events are answered too. It is
// bounded without a clock: each shard keeps two generations of at most
// limit/2/shards entries, and a full current generation replaces the
// previous one. A hit that sets a key already present allocates nothing.
type servedSet struct {
	seed   maphash.Seed
	shards [servedShards]servedShard
	limit  int // entries per generation per shard
}

const servedShards = 64

type servedKey struct{ agent, corr string }

type servedShard struct {
	mu        sync.Mutex // guards cur and prev
	cur, prev map[servedKey]struct{}
	_         [40]byte // keep shards on their own cache lines
}

func newServedSet(limit int) *servedSet {
	s := &servedSet{seed: maphash.MakeSeed(), limit: max(limit/2/servedShards, 16)}
	return s
}

func (s *servedSet) shard(k servedKey) *servedShard {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(k.agent)
	h.WriteString(k.corr)
	return &s.shards[h.Sum64()%servedShards]
}

func (s *servedSet) add(k servedKey) {
	sh := s.shard(k)
	sh.mu.Lock()
	if _, ok := sh.cur[k]; !ok {
		if len(sh.cur) >= s.limit || sh.cur == nil {
			sh.prev, sh.cur = sh.cur, make(map[servedKey]struct{}, s.limit)
		}
		sh.cur[k] = struct{}{}
	}
	sh.mu.Unlock()
}

func (s *servedSet) has(k servedKey) bool {
	sh := s.shard(k)
	sh.mu.Lock()
	_, ok := sh.cur[k]
	if !ok {
		_, ok = sh.prev[k]
	}
	sh.mu.Unlock()
	return ok
}

func (s *servedSet) remove(k servedKey) {
	sh := s.shard(k)
	sh.mu.Lock()
	delete(sh.cur, k)
	delete(sh.prev, k)
	sh.mu.Unlock()
}
