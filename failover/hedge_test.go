package failover_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/failover"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// lateFirst makes one attempt at a "slow" request's headers answer after
// late, whatever the cancel, with a block (a late and lying answer): the
// attempt at instance slowOn if set, else the first to arrive. Other
// attempts get allow at once. It counts the late attempts cancelled.
type lateFirst struct {
	late      time.Duration
	slowOn    atomic.Pointer[instance]
	seen      sync.Map
	cancelled atomic.Int64
}

func (l *lateFirst) answer(ctx context.Context, in *instance, corr string) *agentv2.AgentResponse {
	_, again := l.seen.LoadOrStore(corr, true)
	slow := !again
	if on := l.slowOn.Load(); on != nil {
		slow = on == in
	}
	if !slow || !strings.HasPrefix(corr, "slow") {
		return agent.Allow()
	}
	time.Sleep(l.late)
	if ctx.Err() != nil {
		l.cancelled.Add(1)
	}
	return agent.Block(403, "late")
}

func hedged(t *testing.T, opts ...failover.HedgeOption) (*pool.Pool, *failover.Hedger, *lateFirst, [2]*instance) {
	t.Helper()
	l := &lateFirst{late: 400 * time.Millisecond}
	a, b := newInstance(t, "a"), newInstance(t, "b")
	a.answer = func(ctx context.Context, corr string) *agentv2.AgentResponse { return l.answer(ctx, a, corr) }
	b.answer = func(ctx context.Context, corr string) *agentv2.AgentResponse { return l.answer(ctx, b, corr) }
	h, err := failover.NewHedger(append([]failover.HedgeOption{failover.WithHedgedAgents("waf"),
		failover.WithHedgeDelay(20 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	return twoInstances(t, a, b, h), h, l, [2]*instance{a, b}
}

// TestHedgeWins: the first connection is late; the hedge's answer wins,
// the late block is dropped and never reaches the request, the loser is
// cancelled, and the request's later events stay on the winner.
func TestHedgeWins(t *testing.T) {
	t.Parallel()
	p, h, l, in := hedged(t, failover.WithHedgeBudget(0, 100))
	ctx := testCtx(t)
	// Round robin: the next request's first attempt goes to the instance
	// that did not get this one (unless this one was hedged, under load);
	// that instance is the late one.
	var before map[failover.Outcome]uint64
	for i := 0; ; i++ {
		before = h.Stats()
		corr := fmt.Sprintf("fast%d", i)
		_, err := p.Send(ctx, "waf", headers(corr))
		require.NoError(t, err)
		if h.Stats()[failover.Hedged] == before[failover.Hedged] {
			l.slowOn.Store(in[0])
			if len(in[1].events(corr)) == 0 {
				l.slowOn.Store(in[1])
			}
			break
		}
	}
	start := time.Now()
	resp, err := p.Send(ctx, "waf", headers("slow1"))
	require.NoError(t, err)
	assert.NotNil(t, resp.GetAllow(), "the hedge's allow, not the late block")
	assert.Less(t, time.Since(start), l.late)
	require.Eventually(t, func() bool { return l.cancelled.Load() == 1 }, 5*time.Second, 5*time.Millisecond,
		"the loser got a CancelRequest")
	time.Sleep(l.late) // the late block has come and gone
	for i := range uint32(2) {
		resp, err := p.Send(ctx, "waf", chunk("slow1", i, 10))
		require.NoError(t, err)
		assert.NotNil(t, resp.GetAllow())
	}
	loser, winner := in[0], in[1]
	if l.slowOn.Load() == in[1] {
		loser, winner = winner, loser
	}
	assert.Equal(t, []string{"H", "C0", "C1"}, winner.events("slow1"))
	assert.Equal(t, []string{"H"}, loser.events("slow1"))
	st := h.Stats()
	assert.Equal(t, uint64(1), st[failover.Hedged]-before[failover.Hedged])
	assert.Equal(t, uint64(1), st[failover.HedgeWon]-before[failover.HedgeWon])
	assert.Equal(t, before[failover.PrimaryWon], st[failover.PrimaryWon])
}

// TestHedgeBudget: past its budget a late request is not hedged and gets
// the first connection's answer, as without hedging.
func TestHedgeBudget(t *testing.T) {
	t.Parallel()
	p, h, _, _ := hedged(t, failover.WithHedgeBudget(0, 1))
	ctx := testCtx(t)
	resp, err := p.Send(ctx, "waf", headers("slow1"))
	require.NoError(t, err)
	assert.NotNil(t, resp.GetAllow(), "hedged")
	resp, err = p.Send(ctx, "waf", headers("slow2"))
	require.NoError(t, err)
	assert.NotNil(t, resp.GetBlock(), "not hedged: the first connection's answer")
	st := h.Stats()
	assert.Equal(t, uint64(1), st[failover.Hedged])
	assert.Equal(t, uint64(1), st[failover.HedgeNoBudget])
}

// TestHedgeThenFailover: with failover outside hedging, hedged headers are
// kept as the winner answered them, and when the winner's instance dies
// mid-body the request is replayed on the other.
func TestHedgeThenFailover(t *testing.T) {
	t.Parallel()
	l := &lateFirst{late: 300 * time.Millisecond}
	a, b := newInstance(t, "a"), newInstance(t, "b")
	a.answer = func(ctx context.Context, corr string) *agentv2.AgentResponse { return l.answer(ctx, a, corr) }
	b.answer = func(ctx context.Context, corr string) *agentv2.AgentResponse { return l.answer(ctx, b, corr) }
	fo, err := failover.New(failover.WithAgents("waf"))
	require.NoError(t, err)
	h, err := failover.NewHedger(failover.WithHedgedAgents("waf"), failover.WithHedgeDelay(20*time.Millisecond))
	require.NoError(t, err)
	p := newPool(t, pool.WithInterceptors(fo, h), pool.WithDialer(spread(a, b)), pool.WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", "unix:///spread"))
	require.Eventually(t, func() bool {
		st, err := p.AgentStats("waf")
		return err == nil && len(st.Conns) == 2 && st.Conns[0].State == pool.ConnReady && st.Conns[1].State == pool.ConnReady
	}, 5*time.Second, 5*time.Millisecond)
	for _, ev := range []*agentv2.ProxyToAgent{headers("r1"), chunk("r1", 0, 10)} {
		resp, err := p.Send(ctx, "waf", ev)
		require.NoError(t, err)
		require.NotNil(t, resp.GetAllow())
	}
	dead, other := a, b
	if len(b.events("r1")) == 2 {
		dead, other = b, a
	}
	dead.kill()
	resp, err := p.Send(ctx, "waf", chunk("r1", 1, 10))
	require.NoError(t, err)
	assert.NotNil(t, resp.GetAllow())
	assert.Equal(t, []string{"H@1", "C0", "C1"}, other.events("r1")[len(other.events("r1"))-3:])
	assert.Equal(t, uint64(1), fo.Stats()[failover.Succeeded])
}

// TestHedgeCutsP99: with one of two instances slow, hedging keeps the
// slowest header decisions near the hedge delay, within its budget.
func TestHedgeCutsP99(t *testing.T) {
	t.Parallel()
	const slow, n = time.Second, 40
	a, b := newInstance(t, "a"), newInstance(t, "b")
	a.answer = func(ctx context.Context, _ string) *agentv2.AgentResponse {
		select {
		case <-time.After(slow):
		case <-ctx.Done():
		}
		return agent.Allow()
	}
	h, err := failover.NewHedger(failover.WithHedgedAgents("waf"), failover.WithHedgeDelay(20*time.Millisecond),
		failover.WithHedgeBudget(0.7, 10))
	require.NoError(t, err)
	// Least in flight, the default policy: with round robin every first
	// attempt would go to the slow instance, the hedge taking the other turn.
	p := newPool(t, pool.WithInterceptors(h), pool.WithDialer(spread(a, b)), pool.WithConnections(2),
		pool.WithPolicy("least_in_flight"))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", "unix:///spread"))
	require.Eventually(t, func() bool {
		st, err := p.AgentStats("waf")
		return err == nil && len(st.Conns) == 2 && st.Conns[0].State == pool.ConnReady && st.Conns[1].State == pool.ConnReady
	}, 5*time.Second, 5*time.Millisecond)
	var took []time.Duration
	for i := range n {
		start := time.Now()
		resp, err := p.Send(ctx, "waf", headers(fmt.Sprintf("r%d", i)))
		require.NoError(t, err)
		require.NotNil(t, resp.GetAllow())
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	p99 := took[len(took)*99/100]
	t.Logf("p50 %v, p99 %v, hedged %d of %d", took[len(took)/2], p99, h.Stats()[failover.Hedged], n)
	assert.Less(t, p99, slow/2, "about half the first attempts went to the slow instance")
	assert.LessOrEqual(t, h.Stats()[failover.Hedged], uint64(0.7*n+10))
	assert.Equal(t, h.Stats()[failover.Hedged], h.Stats()[failover.HedgeWon]+h.Stats()[failover.PrimaryWon])
}
