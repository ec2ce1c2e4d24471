package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// slowWhile returns a hook that answers after 200 ms while slow is set:
// beyond the 50 ms call timeout the tests give the transport, so the pool
// sees a transport failure (no decision in time) on a live connection.
func slowWhile(slow *atomic.Bool) func(context.Context, string, agentv2.EventType) (*agentv2.AgentResponse, error) {
	return func(ctx context.Context, _ string, _ agentv2.EventType) (*agentv2.AgentResponse, error) {
		if slow.Load() {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return nil, nil
	}
}

func TestUnhealthyConnectionRecoversAfterProbe(t *testing.T) {
	t.Parallel()
	var slow atomic.Bool
	rec := newRecorder("a")
	rec.setHook(slowWhile(&slow))
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(1), WithoutCircuitBreaker(),
		WithTransportOptions(transport.WithCallTimeout(50*time.Millisecond)))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	slow.Store(true)
	for i := range 3 {
		err := sendRequest(ctx, p, "waf", "f"+itoa(i))
		require.Error(t, err)
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
	}
	s := stats(t, p, "waf")
	require.Len(t, s.Conns, 1)
	assert.Equal(t, ConnFailing, s.Conns[0].State)
	assert.Equal(t, 3, s.Conns[0].ConsecutiveFailures)
	_, err := p.Send(ctx, "waf", headers("while-out"))
	assert.ErrorIs(t, err, ErrNoConnAvailable, "a failing connection takes no requests")

	// The agent still answers pings: the probe brings the connection back.
	slow.Store(false)
	p.tick(ctx)
	s = stats(t, p, "waf")
	assert.Equal(t, ConnReady, s.Conns[0].State)
	assert.Zero(t, s.Conns[0].ConsecutiveFailures)
	require.NoError(t, sendRequest(ctx, p, "waf", "back"))
	for i := range 3 {
		_, _ = p.Send(ctx, "waf", complete("f"+itoa(i)))
	}
}

func TestCallerCancellationsDoNotCount(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	rec := newRecorder("a")
	rec.setHook(holdUntil("hold", release))
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(1), WithCircuitBreaker(2, time.Minute, time.Minute))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	for i := range 5 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		_, err := p.Send(cctx, "waf", headers("hold-"+itoa(i)))
		cancel()
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
	}
	// An agent's own error is an answer, not a transport failure.
	rec.setHook(func(context.Context, string, agentv2.EventType) (*agentv2.AgentResponse, error) {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "rule engine failed")
	})
	for i := range 5 {
		_, err := p.Send(ctx, "waf", headers("wire-"+itoa(i)))
		assert.True(t, agentwire.IsWireError(err), "%v", err)
	}
	s := stats(t, p, "waf")
	assert.Equal(t, BreakerClosed, s.Breaker)
	assert.Equal(t, ConnReady, s.Conns[0].State)
	assert.Zero(t, s.Conns[0].ConsecutiveFailures)
	assert.Equal(t, uint64(10), s.Errors)
	for i := range 5 {
		require.NoError(t, p.Cancel(ctx, "waf", &agentv2.CancelRequest{CorrelationId: "hold-" + itoa(i), Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}))
		_, _ = p.Send(ctx, "waf", complete("wire-"+itoa(i)))
	}
	assert.Zero(t, stats(t, p, "waf").OpenRequests)
}

func TestCircuitBreakerOpensAndHalfOpens(t *testing.T) {
	t.Parallel()
	var slow atomic.Bool
	rec := newRecorder("a")
	rec.setHook(slowWhile(&slow))
	ua := newUnixAgent(t, rec)
	clock := newFakeClock()
	p := newTestPool(t, WithClock(clock.Now), WithConnections(1), WithFailureThreshold(100),
		WithCircuitBreaker(3, 10*time.Second, time.Minute),
		WithTransportOptions(transport.WithCallTimeout(50*time.Millisecond)))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	fail := func(n int) {
		t.Helper()
		slow.Store(true)
		for i := range n {
			_, err := p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{
				Guardrail: &agentv2.GuardrailInspectEvent{CorrelationId: "g" + itoa(i)}}})
			require.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
		}
	}
	ready := func() Readiness {
		t.Helper()
		r, err := p.Ready("waf")
		require.NoError(t, err)
		return r
	}
	assert.Equal(t, Ready, ready())
	fail(3)
	s := stats(t, p, "waf")
	assert.Equal(t, BreakerOpen, s.Breaker)
	assert.Equal(t, uint64(1), s.BreakerOpened)
	assert.Equal(t, NotReadyBreakerOpen, ready())

	// Open: new requests fail at once without reaching the agent.
	seen := rec.events.Load()
	start := time.Now()
	_, err := p.Send(ctx, "waf", headers("refused"))
	assert.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	assert.Less(t, time.Since(start), 40*time.Millisecond)
	assert.Equal(t, seen, rec.events.Load())
	assert.Equal(t, uint64(1), stats(t, p, "waf").BreakerRejected)

	// After the cool-down one probe goes through; while it runs the breaker
	// is half-open and refuses others. The probe fails: open again.
	clock.Advance(61 * time.Second)
	assert.Equal(t, Ready, ready(), "a probe may go")
	probe := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, "waf", headers("probe-1"))
		probe <- err
	}()
	require.Eventually(t, func() bool { return stats(t, p, "waf").Breaker == BreakerHalfOpen }, 5*time.Second, time.Millisecond)
	assert.Equal(t, NotReadyBreakerOpen, ready(), "the probe is out")
	_, err = p.Send(ctx, "waf", headers("during-probe"))
	assert.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(<-probe))
	s = stats(t, p, "waf")
	assert.Equal(t, BreakerOpen, s.Breaker)
	assert.Equal(t, uint64(2), s.BreakerOpened)

	// The agent recovers: the next probe closes the breaker.
	slow.Store(false)
	clock.Advance(61 * time.Second)
	require.NoError(t, sendRequest(ctx, p, "waf", "probe-2"))
	assert.Equal(t, BreakerClosed, stats(t, p, "waf").Breaker)
	require.NoError(t, sendRequest(ctx, p, "waf", "after"))
	for _, corr := range []string{"probe-1"} {
		_, _ = p.Send(ctx, "waf", complete(corr))
	}
}
