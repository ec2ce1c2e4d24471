package pool

// leastInFlightBuilder builds [LeastInFlight] balancers.
type leastInFlightBuilder struct{}

var _ Builder = leastInFlightBuilder{}

func (leastInFlightBuilder) Name() string { return LeastInFlight }

func (leastInFlightBuilder) Build(o BuildOptions) Balancer {
	return &leastInFlightBalancer{rand: o.Rand}
}

// leastInFlightBalancer reads each connection's in-flight counter, which the
// pool increments when an event is routed to the connection (picked or
// pinned by affinity) and decrements when the event ends, so requests held
// by affinity count too.
type leastInFlightBalancer struct {
	rand func() uint64
}

func (b *leastInFlightBalancer) UpdateState(s State) Picker {
	if len(s.Conns) == 0 {
		return emptyPicker{}
	}
	return &leastInFlightPicker{conns: append([]*SubConn(nil), s.Conns...), rand: b.rand}
}

func (b *leastInFlightBalancer) Close() {}

type leastInFlightPicker struct {
	conns []*SubConn
	rand  func() uint64
}

// Pick draws two distinct connections from one random value and takes the
// one with fewer events in flight, the first on a tie.
func (p *leastInFlightPicker) Pick(PickInfo) (PickResult, error) {
	n := len(p.conns)
	if n == 1 {
		return PickResult{Conn: p.conns[0]}, nil
	}
	r := p.rand()
	i := bounded(r&(1<<32-1), n)
	j := bounded(r>>32, n-1)
	if j >= i {
		j++
	}
	a, b := p.conns[i], p.conns[j]
	if b.InFlight() < a.InFlight() {
		a = b
	}
	return PickResult{Conn: a}, nil
}
