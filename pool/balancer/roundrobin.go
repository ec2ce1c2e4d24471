package balancer

import "sync/atomic"

// roundRobinBuilder builds [RoundRobin] balancers.
type roundRobinBuilder struct{}

var _ Builder = roundRobinBuilder{}

func (roundRobinBuilder) Name() string { return RoundRobin }

func (roundRobinBuilder) Build(o BuildOptions) Balancer {
	b := &roundRobinBalancer{}
	// A random start keeps many proxies from marching in step.
	b.next.Store(o.Rand())
	return b
}

// roundRobinBalancer shares one counter across its pickers so that the
// rotation carries on over rebuilds.
type roundRobinBalancer struct {
	next atomic.Uint64
}

func (b *roundRobinBalancer) UpdateState(s State) Picker {
	if len(s.Conns) == 0 {
		return Empty{}
	}
	return &roundRobinPicker{conns: append([]SubConn(nil), s.Conns...), next: &b.next}
}

func (b *roundRobinBalancer) Close() {}

type roundRobinPicker struct {
	conns []SubConn
	next  *atomic.Uint64
}

func (p *roundRobinPicker) Pick(PickInfo) (PickResult, error) {
	i := p.next.Add(1) - 1
	return PickResult{Conn: p.conns[i%uint64(len(p.conns))]}, nil
}
