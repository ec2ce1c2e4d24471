package balancer

// randomBuilder builds [Random] balancers.
type randomBuilder struct{}

var _ Builder = randomBuilder{}

func (randomBuilder) Name() string { return Random }

func (randomBuilder) Build(o BuildOptions) Balancer { return &randomBalancer{rand: o.Rand} }

type randomBalancer struct {
	rand func() uint64
}

func (b *randomBalancer) UpdateState(s State) Picker {
	if len(s.Conns) == 0 {
		return Empty{}
	}
	return &randomPicker{conns: append([]SubConn(nil), s.Conns...), rand: b.rand}
}

func (b *randomBalancer) Close() {}

type randomPicker struct {
	conns []SubConn
	rand  func() uint64
}

func (p *randomPicker) Pick(PickInfo) (PickResult, error) {
	return PickResult{Conn: p.conns[bounded(p.rand(), len(p.conns))]}, nil
}
