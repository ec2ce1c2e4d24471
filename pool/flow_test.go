package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// pausedAgent starts an agent that handles two events per connection at a
// time and a pool of one connection to it, then occupies both (requests
// hold0 and hold1) so that the agent pauses the connection. release lets
// them go; held receives their two results. With one event in flight the
// agent does not pause, so sequential requests afterwards are not
// disturbed.
func pausedAgent(t *testing.T, opts ...Option) (p *Pool, rec *recorder, release func(), held <-chan error) {
	t.Helper()
	rel := make(chan struct{})
	rec = newRecorder("a")
	rec.setHook(holdUntil("hold", rel))
	ua := newUnixAgent(t, rec, sdk.WithMaxConcurrency(2))
	p = newTestPool(t, append([]Option{WithConnections(1)}, opts...)...)
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	done := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold"+itoa(i)))
			done <- err
		}()
	}
	require.Eventually(t, func() bool {
		return rec.active.Load() == 2 && countState(stats(t, p, "waf"), ConnPaused) == 1
	}, 5*time.Second, time.Millisecond)
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return p, rec, release, done
}

// finishHolds waits for the held requests and completes them.
func finishHolds(t *testing.T, p *Pool, release func(), held <-chan error) {
	t.Helper()
	release()
	ctx := testCtx(t)
	for range 2 {
		require.NoError(t, <-held)
	}
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 1 }, 5*time.Second, time.Millisecond)
	for i := range 2 {
		_, err := p.Send(ctx, "waf", complete("hold"+itoa(i)))
		require.NoError(t, err)
	}
}

func TestFlowControlFailClosed(t *testing.T) {
	t.Parallel()
	p, rec, release, held := pausedAgent(t)
	ctx := testCtx(t)
	_, err := p.Send(ctx, "waf", headers("r2"))
	assert.ErrorIs(t, err, ErrPaused)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
	assert.Equal(t, int64(2), rec.events.Load())
	s := stats(t, p, "waf")
	assert.Equal(t, uint64(1), s.FlowRejected)
	assert.Equal(t, 2, s.OpenRequests, "a refused request is not pinned")
	finishHolds(t, p, release, held)
	// Once the agent resumes, requests go through again. (Its flow-control
	// signals may still be on their way: a refusal until then is correct.)
	require.Eventually(t, func() bool {
		err := sendRequest(ctx, p, "waf", "r3")
		if err != nil {
			assert.ErrorIs(t, err, ErrPaused)
		}
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	assert.Zero(t, stats(t, p, "waf").OpenRequests)
}

func TestFlowControlFailOpen(t *testing.T) {
	t.Parallel()
	p, rec, release, held := pausedAgent(t, WithFlowControl(FailOpen, 0))
	ctx := testCtx(t)
	// The whole request skips the agent, not just its headers.
	for _, ev := range []*agentv2.ProxyToAgent{headers("r2"), requestBody("r2", 0, true), complete("r2")} {
		resp, err := p.Send(ctx, "waf", ev)
		require.NoError(t, err)
		assert.NotNil(t, resp.GetAllow())
		assert.Equal(t, "r2", resp.GetCorrelationId())
	}
	assert.Equal(t, int64(2), rec.events.Load(), "the agent saw none of the request")
	s := stats(t, p, "waf")
	assert.Equal(t, uint64(3), s.FailOpen)
	assert.Equal(t, 2, s.OpenRequests)
	finishHolds(t, p, release, held)
}

func TestFlowControlWaitAndRetry(t *testing.T) {
	t.Parallel()
	t.Run("resumed", func(t *testing.T) {
		t.Parallel()
		p, rec, release, held := pausedAgent(t, WithFlowControl(WaitAndRetry, 10*time.Second))
		ctx := testCtx(t)
		res := make(chan error, 1)
		go func() { res <- sendRequest(ctx, p, "waf", "r2") }()
		select {
		case err := <-res:
			t.Fatalf("the event did not wait for the agent to resume: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		release()
		require.NoError(t, <-res)
		assert.Equal(t, int64(4), rec.events.Load())
		assert.Zero(t, stats(t, p, "waf").FlowRejected)
		finishHolds(t, p, release, held)
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		p, _, release, held := pausedAgent(t, WithFlowControl(WaitAndRetry, 50*time.Millisecond))
		ctx := testCtx(t)
		start := time.Now()
		_, err := p.Send(ctx, "waf", headers("r2"))
		assert.ErrorIs(t, err, ErrPaused)
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
		assert.Equal(t, uint64(1), stats(t, p, "waf").FlowRejected)

		// The caller's own deadline wins over the flow-control wait.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		_, err = p.Send(cctx, "waf", headers("r3"))
		cancel()
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
		finishHolds(t, p, release, held)
	})
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	rel := make(chan struct{})
	rec := newRecorder("a")
	rec.setHook(holdUntil("hold", rel))
	ua := newUnixAgent(t, rec)
	// The queue wait leaves a loaded machine time to return a freed slot
	// to r5 below.
	p := newTestPool(t, WithConnections(1), WithMaxConcurrency(2, 150*time.Millisecond))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Equal(t, 2, stats(t, p, "waf").Conns[0].Limit)

	held := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold"+itoa(i)))
			held <- err
		}()
	}
	require.Eventually(t, func() bool { return rec.active.Load() == 2 }, 5*time.Second, time.Millisecond)

	start := time.Now()
	_, err := p.Send(ctx, "waf", headers("r3"))
	assert.ErrorIs(t, err, ErrConcurrencyLimit)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "waited the queue wait")
	assert.Equal(t, uint64(1), stats(t, p, "waf").LimitRejected)
	assert.Equal(t, int64(2), rec.events.Load())

	// The wait honours the caller's context.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	_, err = p.Send(cctx, "waf", headers("r4"))
	assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err))

	// A slot freed during the wait is taken.
	res := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, "waf", headers("r5"))
		res <- err
	}()
	time.Sleep(10 * time.Millisecond) // most likely r5 is waiting now
	close(rel)
	require.NoError(t, <-held)
	require.NoError(t, <-held)
	require.NoError(t, <-res)
	assert.Equal(t, uint64(1), stats(t, p, "waf").LimitRejected)
	for _, corr := range []string{"hold0", "hold1", "r5"} {
		_, err := p.Send(ctx, "waf", complete(corr))
		require.NoError(t, err)
	}
	assert.Zero(t, stats(t, p, "waf").OpenRequests)
}
