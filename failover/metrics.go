package failover

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Outcome is what became of a failover or a hedged request.
type Outcome string

// Failover outcomes: attempted ones end succeeded or failed; the others
// were refused, for the reason they name.
const (
	Attempted Outcome = "attempted"
	Succeeded Outcome = "succeeded"
	// Failed: no other connection, nor the fallback, gave an answer.
	Failed Outcome = "failed"
	// Overflow: the request's events exceeded a buffer bound.
	Overflow Outcome = "refused_overflow"
	// UnsafeEvent: the request saw an event that is not replayed
	// (websocket frames, guardrail inspections), or the failing event is one.
	UnsafeEvent Outcome = "refused_unsafe_event"
	// NoBudget: the retry budget was spent.
	NoBudget Outcome = "refused_budget"
	// Expired: the request was forgotten (idle past the TTL, see
	// WithIdleTimeout) while one of its events was in flight.
	Expired Outcome = "refused_expired"
	// Inconsistent: the new connection answered a replayed event otherwise
	// than the caller was answered; the request fails from then on.
	Inconsistent Outcome = "refused_inconsistent"
)

// Hedging outcomes.
const (
	// Hedged: a second attempt was sent; PrimaryWon or HedgeWon follows.
	Hedged     Outcome = "hedged"
	PrimaryWon Outcome = "primary_won"
	HedgeWon   Outcome = "hedge_won"
	// HedgeNoBudget: the delay passed but the hedging budget was spent.
	HedgeNoBudget Outcome = "hedge_refused_budget"
)

// counts counts outcomes in OpenTelemetry and for Stats.
type counts struct {
	c    metric.Int64Counter
	attr string
	n    map[Outcome]*atomic.Uint64
}

func newCounts(mp metric.MeterProvider, name, desc, attr string, outcomes ...Outcome) (*counts, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter("github.com/agentwire/agentwire/failover").Int64Counter(name, metric.WithDescription(desc))
	if err != nil {
		return nil, err
	}
	m := &counts{c: c, attr: attr, n: make(map[Outcome]*atomic.Uint64, len(outcomes))}
	for _, o := range outcomes {
		m.n[o] = new(atomic.Uint64)
	}
	return m, nil
}

func (m *counts) add(agentID string, o Outcome) {
	m.n[o].Add(1)
	m.c.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("agentwire.agent.id", agentID), attribute.String(m.attr, string(o))))
}

func (m *counts) stats() map[Outcome]uint64 {
	out := make(map[Outcome]uint64, len(m.n))
	for o, n := range m.n {
		out[o] = n.Load()
	}
	return out
}
