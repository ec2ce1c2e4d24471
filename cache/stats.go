package cache

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Stats counts what the cache did for one agent.
type Stats struct {
	Hits      uint64 // fresh decisions served
	StaleHits uint64 // expired decisions served while the agent was unavailable
	Misses    uint64 // request_headers events the cache could not answer
	Joins     uint64 // misses that waited for an identical request's call
	Stores    uint64 // decisions stored
	Followers uint64 // later events of cache-served requests answered allow
	Purges    uint64 // purges received
	// StoreErrors counts failed lookups and writes (treated as misses).
	StoreErrors uint64
}

// agentState is what the interceptor keeps per agent: its counters and
// its scopes, found with one lookup per event.
type agentState struct {
	hits, staleHits, misses, joins, stores, followers, purges, storeErrors atomic.Uint64
	scopes                                                                 agentScopes
}

type statsByAgent struct {
	m   sync.Map // agent id -> *agentState
	reg metric.Registration
}

func (s *statsByAgent) unregister() {
	if s.reg != nil {
		_ = s.reg.Unregister()
	}
}

func (s *statsByAgent) of(agentID string) *agentState {
	if c, ok := s.m.Load(agentID); ok {
		return c.(*agentState)
	}
	c, _ := s.m.LoadOrStore(agentID, &agentState{})
	return c.(*agentState)
}

// Stats returns the counters of every agent the cache has seen.
func (ic *Interceptor) Stats() map[string]Stats {
	out := map[string]Stats{}
	ic.stats.m.Range(func(k, v any) bool {
		c := v.(*agentState)
		out[k.(string)] = Stats{
			Hits: c.hits.Load(), StaleHits: c.staleHits.Load(), Misses: c.misses.Load(), Joins: c.joins.Load(),
			Stores: c.stores.Load(), Followers: c.followers.Load(), Purges: c.purges.Load(), StoreErrors: c.storeErrors.Load(),
		}
		return true
	})
	return out
}

// register exports the counters as OpenTelemetry observable counters,
// agentwire.cache.<name>, by agent.
func (s *statsByAgent) register(mp metric.MeterProvider) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/agentwire/agentwire/cache")
	type inst struct {
		name, desc string
		get        func(*agentState) uint64
		c          metric.Int64ObservableCounter
	}
	insts := []*inst{
		{name: "hits", desc: "request_headers events answered from the cache", get: func(c *agentState) uint64 { return c.hits.Load() }},
		{name: "stale_hits", desc: "expired decisions served while the agent was unavailable", get: func(c *agentState) uint64 { return c.staleHits.Load() }},
		{name: "misses", desc: "request_headers events the cache could not answer", get: func(c *agentState) uint64 { return c.misses.Load() }},
		{name: "joins", desc: "misses that waited for an identical request's agent call", get: func(c *agentState) uint64 { return c.joins.Load() }},
		{name: "stores", desc: "decisions stored", get: func(c *agentState) uint64 { return c.stores.Load() }},
		{name: "store_errors", desc: "failed cache lookups and writes", get: func(c *agentState) uint64 { return c.storeErrors.Load() }},
	}
	obs := make([]metric.Observable, len(insts))
	for i, in := range insts {
		c, err := m.Int64ObservableCounter("agentwire.cache."+in.name, metric.WithDescription(in.desc))
		if err != nil {
			return err
		}
		in.c, obs[i] = c, c
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.m.Range(func(k, v any) bool {
			attrs := metric.WithAttributes(attribute.String("agentwire.agent.id", k.(string)))
			for _, in := range insts {
				o.ObserveInt64(in.c, int64(in.get(v.(*agentState))), attrs)
			}
			return true
		})
		return nil
	}, obs...)
	s.reg = reg
	return err
}
