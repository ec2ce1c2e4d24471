package balancer

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// fakeConn is a SubConn whose figures the test sets.
type fakeConn struct {
	id        string
	inFlight  atomic.Int64
	gathering atomic.Bool
	health    agentv2.HealthState
	load      *agentv2.LoadMetrics
	errRate   float64
}

func (c *fakeConn) ID() string                  { return c.id }
func (c *fakeConn) InFlight() int64             { return c.inFlight.Load() }
func (c *fakeConn) Gathering() bool             { return c.gathering.Load() }
func (c *fakeConn) Health() agentv2.HealthState { return c.health }
func (c *fakeConn) Load() *agentv2.LoadMetrics  { return c.load }
func (c *fakeConn) ErrorRate() float64          { return c.errRate }

// testConns returns n connections for picker tests, as fakes and as the
// SubConns a State holds.
func testConns(n int) ([]*fakeConn, []SubConn) {
	fakes := make([]*fakeConn, n)
	conns := make([]SubConn, n)
	for i := range fakes {
		fakes[i] = &fakeConn{id: "c" + strconv.Itoa(i)}
		conns[i] = fakes[i]
	}
	return fakes, conns
}

// seqRand returns 0, 1, 2...
func seqRand() func() uint64 {
	var n atomic.Uint64
	return func() uint64 { return n.Add(1) - 1 }
}

func countPicks(t *testing.T, p Picker, conns []SubConn, n int) []int {
	t.Helper()
	counts := make([]int, len(conns))
	for range n {
		res, err := p.Pick(PickInfo{})
		require.NoError(t, err)
		require.Nil(t, res.Done)
		i := indexOf(conns, res.Conn)
		require.GreaterOrEqual(t, i, 0, "picked a connection outside the state")
		counts[i]++
	}
	return counts
}

func indexOf(conns []SubConn, sc SubConn) int {
	for i, c := range conns {
		if c == sc {
			return i
		}
	}
	return -1
}

func TestRoundRobinDistribution(t *testing.T) {
	t.Parallel()
	_, conns := testConns(4)
	b := builtins[RoundRobin].Build(BuildOptions{Rand: seqRand()})
	defer b.Close()
	p := b.UpdateState(State{Conns: conns})
	var order []int
	for range 8 {
		res, err := p.Pick(PickInfo{})
		require.NoError(t, err)
		order = append(order, indexOf(conns, res.Conn))
	}
	assert.Equal(t, []int{0, 1, 2, 3, 0, 1, 2, 3}, order)
	assert.Equal(t, []int{100, 100, 100, 100}, countPicks(t, p, conns, 400))

	// A rebuild carries the rotation on; a removed connection is skipped.
	p = b.UpdateState(State{Conns: conns[:3]})
	assert.Equal(t, []int{100, 100, 100, 0}, countPicks(t, p, conns, 300))
}

func TestRandomDistribution(t *testing.T) {
	t.Parallel()
	_, conns := testConns(4)
	src := rand.New(rand.NewPCG(1, 2))
	b := builtins[Random].Build(BuildOptions{Rand: src.Uint64})
	defer b.Close()
	got := countPicks(t, b.UpdateState(State{Conns: conns}), conns, 10000)

	replay := rand.New(rand.NewPCG(1, 2))
	want := make([]int, 4)
	for range 10000 {
		want[replay.Uint64()%4]++
	}
	assert.Equal(t, want, got)
	for i, n := range got {
		assert.InDelta(t, 2500, n, 250, "connection %d", i)
	}
}

func TestLeastInFlightDistribution(t *testing.T) {
	t.Parallel()
	fakes, conns := testConns(4)
	for i, n := range []int64{0, 5, 0, 10} {
		fakes[i].inFlight.Store(n)
	}
	src := rand.New(rand.NewPCG(3, 4))
	b := builtins[LeastInFlight].Build(BuildOptions{Rand: src.Uint64})
	defer b.Close()
	got := countPicks(t, b.UpdateState(State{Conns: conns}), conns, 12000)
	// Two distinct choices: the busiest connection never wins, the second
	// busiest only against it (2 ordered pairs of 12).
	assert.Zero(t, got[3])
	assert.InDelta(t, 2000, got[1], 200)
	assert.InDelta(t, 10000, got[0]+got[2], 200)

	// One connection: always it.
	p := b.UpdateState(State{Conns: conns[3:]})
	assert.Equal(t, []int{100}, countPicks(t, p, conns[3:], 100))
}

// TestLeastInFlightPrefersGathering: a connection gathering a batch of
// writes wins unless it is more than gatherSlack events busier than the
// less busy of the two drawn: a quarter more, at most 16.
func TestLeastInFlightPrefersGathering(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int64(1), gatherSlack(0))
	assert.Equal(t, int64(3), gatherSlack(10))
	assert.Equal(t, int64(16), gatherSlack(64))
	assert.Equal(t, int64(16), gatherSlack(1000))
	fakes, conns := testConns(4)
	for i, n := range []int64{10, 10, 10 + gatherSlack(10), 10} {
		fakes[i].inFlight.Store(n)
	}
	fakes[2].gathering.Store(true)
	src := rand.New(rand.NewPCG(5, 6))
	b := builtins[LeastInFlight].Build(BuildOptions{Rand: src.Uint64})
	defer b.Close()
	p := b.UpdateState(State{Conns: conns})
	assert.Equal(t, []int{0, 0, 1000, 0}, countPicks(t, p, conns, 1000))

	// One more event in flight and it is too busy: the two drawn decide.
	fakes[2].inFlight.Store(11 + gatherSlack(10))
	got := countPicks(t, p, conns, 1200)
	assert.Zero(t, got[2])

	// Of two gathering, the less busy.
	fakes[2].inFlight.Store(10)
	fakes[1].inFlight.Store(12)
	fakes[1].gathering.Store(true)
	assert.Equal(t, []int{0, 0, 1000, 0}, countPicks(t, p, conns, 1000))
}

func TestWeightedDistribution(t *testing.T) {
	t.Parallel()
	fakes, conns := testConns(4)
	// Reported load 0, 1 and 3 in flight: weights 1e6, 5e5, 2.5e5.
	for i, inflight := range []uint32{0, 1, 3} {
		fakes[i].load = &agentv2.LoadMetrics{InFlight: inflight}
	}
	// Idle but degraded, and failing half its events: 1e6 / 4 * 0.25.
	fakes[3].health = agentv2.HealthState_HEALTH_STATE_DEGRADED
	fakes[3].errRate = 0.5
	assert.Equal(t, []uint64{1_000_000, 500_000, 250_000, 62_500}, []uint64{Weight(conns[0]), Weight(conns[1]), Weight(conns[2]), Weight(conns[3])})

	// A fixed sequence that walks the weight range in steps of 250.
	var k uint64
	step := func() uint64 { k++; return (k - 1) * 250 }
	b := builtins[Weighted].Build(BuildOptions{Rand: step})
	defer b.Close()
	got := countPicks(t, b.UpdateState(State{Conns: conns}), conns, 7250)
	assert.Equal(t, []int{4000, 2000, 1000, 250}, got)
}

func TestWeightFloor(t *testing.T) {
	t.Parallel()
	assert.Equal(t, uint64(1), Weight(&fakeConn{errRate: 1}))
}

func TestEmptyPicker(t *testing.T) {
	t.Parallel()
	for name, builder := range builtins {
		b := builder.Build(BuildOptions{Rand: seqRand()})
		_, err := b.UpdateState(State{}).Pick(PickInfo{})
		assert.ErrorIs(t, err, ErrNoSubConn, name)
		assert.Equal(t, name, builder.Name())
		b.Close()
	}
}
