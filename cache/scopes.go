package cache

import (
	"sync"
	"sync/atomic"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// scopeLists keeps, per agent, the scopes its cacheable decisions used,
// newest first: a lookup tries each. Lists are replaced, never changed,
// so readers need no lock.
type scopeLists struct {
	m sync.Map // agent id -> *atomic.Pointer[[]*scope]
}

func (l *scopeLists) get(agentID string) []*scope {
	p, ok := l.m.Load(agentID)
	if !ok {
		return nil
	}
	if s := p.(*atomic.Pointer[[]*scope]).Load(); s != nil {
		return *s
	}
	return nil
}

// add makes s the agent's newest scope (keeping at most limit) and
// returns its canonical form.
func (l *scopeLists) add(agentID string, s *agentv2.CacheScope, limit int) *scope {
	sc := newScope(s)
	p, _ := l.m.LoadOrStore(agentID, &atomic.Pointer[[]*scope]{})
	ptr := p.(*atomic.Pointer[[]*scope])
	for {
		old := ptr.Load()
		var cur []*scope
		if old != nil {
			cur = *old
		}
		if len(cur) > 0 && cur[0].id == sc.id {
			return cur[0]
		}
		next := make([]*scope, 0, min(len(cur)+1, limit))
		next = append(next, &sc)
		for _, x := range cur {
			if x.id != sc.id && len(next) < limit {
				next = append(next, x)
			}
		}
		if ptr.CompareAndSwap(old, &next) {
			return &sc
		}
	}
}
