package failover_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/failover"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// twoInstances is agent "waf" with one connection to each of a and b,
// behind fo.
func twoInstances(t *testing.T, a, b *instance, fo pool.Interceptor) *pool.Pool {
	t.Helper()
	p := newPool(t, pool.WithInterceptors(fo), pool.WithDialer(spread(a, b)), pool.WithConnections(2))
	require.NoError(t, p.AddAgent(testCtx(t), "waf", "unix:///spread"))
	require.Eventually(t, func() bool {
		st, err := p.AgentStats("waf")
		ready := 0
		for _, c := range st.Conns {
			if c.State == pool.ConnReady {
				ready++
			}
		}
		return err == nil && ready == 2
	}, 5*time.Second, 5*time.Millisecond)
	return p
}

// TestFailoverMidBody: 64 requests are mid-body when one of the agent's
// two instances is killed; each request pinned to it is replayed on the
// other instance (headers and buffered chunks, in order), and every caller
// gets one answer for each event.
func TestFailoverMidBody(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t, "a"), newInstance(t, "b")
	var held atomic.Int64
	a.hold = func(ctx context.Context, _, what string) {
		if what == "C2" {
			held.Add(1)
			<-ctx.Done()
		}
	}
	fo, err := failover.New(failover.WithAgents("waf"), failover.WithRetryBudget(100, 0.1))
	require.NoError(t, err)
	p := twoInstances(t, a, b, fo)
	ctx := testCtx(t)

	const n = 64
	corr := func(i int) string { return fmt.Sprintf("r%d", i) }
	each := func(f func(i int) error) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = f(i) })
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, corr(i))
		}
	}
	sendAll := func(evs ...*agentv2.ProxyToAgent) error {
		for _, ev := range evs {
			resp, err := p.Send(ctx, "waf", ev)
			if err != nil {
				return err
			}
			if resp.GetAllow() == nil {
				return fmt.Errorf("not an allow: %v", resp)
			}
		}
		return nil
	}
	each(func(i int) error { return sendAll(headers(corr(i)), chunk(corr(i), 0, 100), chunk(corr(i), 1, 100)) })
	var onA []string
	for i := range n {
		if len(a.events(corr(i))) > 0 {
			onA = append(onA, corr(i))
		}
	}
	require.NotEmpty(t, onA)
	go func() {
		for held.Load() < int64(len(onA)) {
			time.Sleep(time.Millisecond)
		}
		a.kill()
	}()
	each(func(i int) error { return sendAll(chunk(corr(i), 2, 100), complete(corr(i))) })

	for i := range n {
		h := "H"
		if slices.Contains(onA, corr(i)) {
			h = "H@1" // replayed, and says so
		}
		assert.Equal(t, []string{h, "C0", "C1", "C2", "E"}, b.events(corr(i)), "%s: what b saw", corr(i))
	}
	for _, c := range onA {
		assert.Equal(t, []string{"H", "C0", "C1", "C2"}, a.events(c), "%s: what a saw", c)
	}
	st := fo.Stats()
	assert.Equal(t, uint64(len(onA)), st[failover.Attempted])
	assert.Equal(t, uint64(len(onA)), st[failover.Succeeded])
	assert.Zero(t, st[failover.Failed]+st[failover.Overflow]+st[failover.NoBudget]+st[failover.Inconsistent]+st[failover.UnsafeEvent])
}

// TestFailoverToFallback: the agent's only instance dies mid-body; the
// request goes on at the fallback agent, its later events too.
func TestFailoverToFallback(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t, "a"), newInstance(t, "b")
	fo, err := failover.New(failover.WithFallback("waf", "backup"))
	require.NoError(t, err)
	p := newPool(t, pool.WithInterceptors(fo))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", a.endpoint()))
	require.NoError(t, p.AddAgent(ctx, "backup", b.endpoint()))
	for _, ev := range []*agentv2.ProxyToAgent{headers("r1"), chunk("r1", 0, 10)} {
		_, err := p.Send(ctx, "waf", ev)
		require.NoError(t, err)
	}
	a.kill()
	for _, ev := range []*agentv2.ProxyToAgent{chunk("r1", 1, 10), chunk("r1", 2, 10), complete("r1")} {
		resp, err := p.Send(ctx, "waf", ev)
		require.NoError(t, err)
		assert.NotNil(t, resp.GetAllow())
	}
	assert.Equal(t, []string{"H@1", "C0", "C1", "C2", "E"}, b.events("r1"))
	assert.Equal(t, uint64(1), fo.Stats()[failover.Succeeded])
}

// TestFailoverOfHeaders: the connection dies before answering a request's
// headers; the headers go to the fallback marked as a replay, and the
// caller's own event is left unmarked.
func TestFailoverOfHeaders(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t, "a"), newInstance(t, "b")
	held := make(chan struct{})
	var once sync.Once
	a.hold = func(ctx context.Context, _, what string) {
		// The replay may reach a's other connection before a dies: it
		// holds too, and must not close held again (the handler would
		// panic, and the agent's error is no reason to fail over).
		once.Do(func() { close(held) })
		<-ctx.Done()
	}
	fo, err := failover.New(failover.WithFallback("waf", "backup"))
	require.NoError(t, err)
	p := newPool(t, pool.WithInterceptors(fo))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", a.endpoint()))
	require.NoError(t, p.AddAgent(ctx, "backup", b.endpoint()))
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-held
		a.kill()
	})
	ev := headers("r1")
	resp, err := p.Send(ctx, "waf", ev)
	require.NoError(t, err)
	assert.NotNil(t, resp.GetAllow())
	assert.Equal(t, []string{"H@1"}, b.events("r1"))
	assert.Zero(t, ev.GetRequestHeaders().GetMetadata().GetReplayAttempt(), "the caller's event is not stamped")
	_, err = p.Send(ctx, "waf", complete("r1"))
	require.NoError(t, err)
	assert.Equal(t, []string{"H@1", "E"}, b.events("r1"))
}

// TestFailoverRefused: past a bound, without budget, or when the other
// instance answers a replayed event differently, the event fails (an
// error, never an allow) and is counted.
func TestFailoverRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []failover.Option
		b    func(*instance)
		want failover.Outcome
	}{
		{name: "overflow", opts: []failover.Option{failover.WithRequestBuffer(300)}, want: failover.Overflow},
		{name: "total", opts: []failover.Option{failover.WithTotalBuffer(300)}, want: failover.Overflow},
		{name: "budget", opts: []failover.Option{failover.WithRetryBudget(0, 0)}, want: failover.NoBudget},
		{name: "inconsistent", b: func(in *instance) { in.mutate = "other" }, want: failover.Inconsistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x, y := newInstance(t, "x"), newInstance(t, "y")
			fo, err := failover.New(append([]failover.Option{failover.WithAgents("waf")}, tc.opts...)...)
			require.NoError(t, err)
			p := twoInstances(t, x, y, fo)
			ctx := testCtx(t)
			for _, ev := range []*agentv2.ProxyToAgent{headers("r1"), chunk("r1", 0, 200), chunk("r1", 1, 200)} {
				_, err := p.Send(ctx, "waf", ev)
				require.NoError(t, err)
			}
			dead, other := x, y
			if len(y.events("r1")) > 0 {
				dead, other = y, x
			}
			if tc.b != nil {
				tc.b(other)
			}
			dead.kill()
			resp, err := p.Send(ctx, "waf", chunk("r1", 2, 10))
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, uint64(1), fo.Stats()[tc.want])
			assert.Zero(t, fo.Stats()[failover.Succeeded])
			_, err = p.Send(ctx, "waf", chunk("r1", 3, 10))
			assert.ErrorIs(t, err, pool.ErrAffinityLost, "later events fail too")
			assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
		})
	}
}
