package balancer

// leastInFlightBuilder builds [LeastInFlight] balancers.
type leastInFlightBuilder struct{}

var _ Builder = leastInFlightBuilder{}

func (leastInFlightBuilder) Name() string { return LeastInFlight }

func (leastInFlightBuilder) Build(o BuildOptions) Balancer {
	return &leastInFlightBalancer{rand: o.Rand}
}

// leastInFlightBalancer reads each connection's in-flight count
// ([SubConn.InFlight]): the slots the pool's events hold on it, whether
// picked or pinned by affinity, so requests held by affinity count too.
// It keeps no counter of its own.
type leastInFlightBalancer struct {
	rand func() uint64
}

func (b *leastInFlightBalancer) UpdateState(s State) Picker {
	if len(s.Conns) == 0 {
		return Empty{}
	}
	return &leastInFlightPicker{conns: append([]SubConn(nil), s.Conns...), rand: b.rand}
}

func (b *leastInFlightBalancer) Close() {}

type leastInFlightPicker struct {
	conns []SubConn
	rand  func() uint64
}

// Pick draws two distinct connections from one random value and takes the
// one with fewer events in flight, the first on a tie, unless a connection
// is gathering a batch of writes and has at most gatherSlack more events in
// flight: that one costs no system call of its own. (In a proxy, the
// callers a batch of answers just woke send their next events right away;
// keeping those on the connection that woke them sends them in one write.)
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
	if g := p.gathering(a); g != nil {
		if least := a.InFlight(); g.InFlight() <= least+gatherSlack(least) {
			a = g
		}
	}
	return PickResult{Conn: a}, nil
}

// gatherSlack is how many more events in flight than least (the less busy
// of the two drawn) a gathering connection may have and still be
// preferred: a quarter more, at most maxGatherSlack. Relative, so that
// with few events in flight a slow agent's connection, which gathers the
// callers its late answers wake, does not keep them.
func gatherSlack(least int64) int64 { return min(least/4+1, maxGatherSlack) }

// maxGatherSlack caps gatherSlack.
const maxGatherSlack = 16

// maxGatherScan bounds the connections Pick looks at for one gathering a
// batch; with more, only the two drawn are considered.
const maxGatherScan = 16

// gathering returns the least busy connection gathering a batch of writes,
// or nil; drawn is one of the two drawn, considered first.
func (p *leastInFlightPicker) gathering(drawn SubConn) SubConn {
	if drawn.Gathering() {
		return nil // the drawn one is as good
	}
	if len(p.conns) > maxGatherScan {
		return nil
	}
	var best SubConn
	for _, c := range p.conns {
		if c != drawn && c.Gathering() && (best == nil || c.InFlight() < best.InFlight()) {
			best = c
		}
	}
	return best
}
