package cache

import (
	"sync/atomic"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// agentScopes keeps the scopes an agent's cacheable decisions used,
// newest first: a lookup tries each. Lists are replaced, never changed,
// so readers need no lock.
type agentScopes struct {
	list      atomic.Pointer[[]*scope]
	refreshed atomic.Int64 // unix nanoseconds of the last look at the store's list
}

func (a *agentScopes) get() []*scope {
	if s := a.list.Load(); s != nil {
		return *s
	}
	return nil
}

// add makes s the agent's newest scope (keeping at most limit) and
// returns its canonical form, and whether it was new.
func (a *agentScopes) add(s *agentv2.CacheScope, limit int) (*scope, bool) {
	sc := newScope(s)
	for {
		old := a.list.Load()
		var cur []*scope
		if old != nil {
			cur = *old
		}
		if len(cur) > 0 && cur[0].id == sc.id {
			return cur[0], false
		}
		isNew := true
		next := make([]*scope, 0, min(len(cur)+1, limit))
		next = append(next, &sc)
		for _, x := range cur {
			if x.id == sc.id {
				isNew = false
			} else if len(next) < limit {
				next = append(next, x)
			}
		}
		if a.list.CompareAndSwap(old, &next) {
			return &sc, isNew
		}
	}
}

// merge adds the scopes of a shared store the agent does not know yet,
// after its own.
func (a *agentScopes) merge(shared []*agentv2.CacheScope, limit int) {
	for {
		old := a.list.Load()
		var cur []*scope
		if old != nil {
			cur = *old
		}
		next := append([]*scope(nil), cur...)
		for _, s := range shared {
			sc := newScope(s)
			known := false
			for _, x := range next {
				known = known || x.id == sc.id
			}
			if !known && len(next) < limit {
				next = append(next, &sc)
			}
		}
		if len(next) == len(cur) || a.list.CompareAndSwap(old, &next) {
			return
		}
	}
}
