package balancer

import (
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// weightedBuilder builds [Weighted] balancers.
type weightedBuilder struct{}

var _ Builder = weightedBuilder{}

func (weightedBuilder) Name() string { return Weighted }

func (weightedBuilder) Build(o BuildOptions) Balancer { return &weightedBalancer{rand: o.Rand} }

type weightedBalancer struct {
	rand func() uint64
}

func (b *weightedBalancer) UpdateState(s State) Picker {
	if len(s.Conns) == 0 {
		return Empty{}
	}
	p := &weightedPicker{
		conns: append([]SubConn(nil), s.Conns...),
		cum:   make([]uint64, len(s.Conns)),
		rand:  b.rand,
	}
	var total uint64
	for i, sc := range s.Conns {
		total += Weight(sc)
		p.cum[i] = total
	}
	return p
}

func (b *weightedBalancer) Close() {}

// Weight is the weight the [Weighted] policy gives a connection, from 1 to
// 1 000 000: 1e6 / (1 + the agent's reported in_flight + queue_depth),
// divided by 4 when the agent reports itself degraded, times (1-e)² for the
// connection's recent error rate e. The pool refreshes it on every health
// report and probe tick.
func Weight(sc SubConn) uint64 {
	w := 1e6
	if l := sc.Load(); l != nil {
		w /= 1 + float64(l.GetInFlight()) + float64(l.GetQueueDepth())
	}
	if sc.Health() == agentv2.HealthState_HEALTH_STATE_DEGRADED {
		w /= 4
	}
	e := min(max(sc.ErrorRate(), 0), 1)
	w *= (1 - e) * (1 - e)
	return max(uint64(w), 1)
}

type weightedPicker struct {
	conns []SubConn
	cum   []uint64 // cumulative weights
	rand  func() uint64
}

func (p *weightedPicker) Pick(PickInfo) (PickResult, error) {
	x := p.rand() % p.cum[len(p.cum)-1]
	// The first connection whose cumulative weight exceeds x.
	i, _ := slices.BinarySearch(p.cum, x+1)
	return PickResult{Conn: p.conns[i]}, nil
}
