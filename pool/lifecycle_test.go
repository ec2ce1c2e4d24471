package pool

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
)

// Not parallel: it checks that no goroutine outlives the pool.
func TestShutdownDrainsInFlight(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	release := make(chan struct{})
	rec := newRecorder("a")
	rec.setHook(holdUntil("hold", release))
	ua := newUnixAgent(t, rec)
	p, err := New(WithConnections(2), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, time.Millisecond)

	held := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold"+itoa(i)))
			held <- err
		}()
	}
	_, err = p.Send(ctx, "waf", headers("open"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rec.active.Load() == 3 }, 5*time.Second, time.Millisecond)

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(sctx) }()

	require.Eventually(t, func() bool { return rec.drains.Load() >= 2 }, 5*time.Second, time.Millisecond, "drain notices")
	_, err = p.Send(ctx, "waf", headers("new"))
	assert.ErrorIs(t, err, ErrDraining)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with requests in flight: %v", err)
	case <-time.After(30 * time.Millisecond):
	}

	// The in-flight events finish; the open requests may still send theirs.
	close(release)
	for range 3 {
		require.NoError(t, <-held)
	}
	for _, corr := range []string{"hold0", "hold1", "hold2", "open"} {
		_, err := p.Send(ctx, "waf", requestBody(corr, 0, true))
		require.NoError(t, err)
		_, err = p.Send(ctx, "waf", complete(corr))
		require.NoError(t, err)
	}
	require.NoError(t, <-done)
	require.Eventually(t, func() bool { return rec.shutdowns.Load() >= 2 }, 5*time.Second, time.Millisecond, "shutdown notices")
	require.NoError(t, p.Shutdown(ctx), "idempotent")
	_, err = p.Send(ctx, "waf", headers("late"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, p.AddAgent(ctx, "other", ua.endpoint()), ErrClosed)

	ua.kill()
	goleak.VerifyNone(t, ignore)
}

// Not parallel: it checks that no goroutine outlives the pool.
func TestShutdownDeadline(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	release := make(chan struct{})
	defer close(release)
	rec := newRecorder("a")
	rec.setHook(holdUntil("hold", release))
	ua := newUnixAgent(t, rec)
	p, err := New(WithConnections(1), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	held := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, "waf", headers("hold"))
		held <- err
	}()
	require.Eventually(t, func() bool { return rec.active.Load() == 1 }, 5*time.Second, time.Millisecond)

	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(sctx)
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
	assert.Less(t, time.Since(start), 5*time.Second)
	// The pool is closed regardless: the stuck event fails.
	err = <-held
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
	ua.kill()
	goleak.VerifyNone(t, ignore)
}

func TestRemoveAgentDrains(t *testing.T) {
	t.Parallel()
	ra, rb := newRecorder("a"), newRecorder("b")
	ua, ub := newUnixAgent(t, ra), newUnixAgent(t, rb)
	p := newTestPool(t, WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "a", ua.endpoint()))
	require.NoError(t, p.AddAgent(ctx, "b", ub.endpoint()))
	_, err := p.Send(ctx, "a", headers("open"))
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- p.RemoveAgent(ctx, "a") }()
	require.Eventually(t, func() bool { return ra.drains.Load() >= 2 }, 5*time.Second, time.Millisecond)
	_, err = p.Send(ctx, "a", headers("new"))
	assert.ErrorIs(t, err, ErrDraining)
	require.NoError(t, sendRequest(ctx, p, "b", "other-agent"), "other agents are not affected")
	_, err = p.Send(ctx, "a", complete("open"))
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.Equal(t, []string{"b"}, p.Agents())
	_, err = p.Send(ctx, "a", headers("gone"))
	assert.ErrorIs(t, err, ErrUnknownAgent)
	assert.ErrorIs(t, p.RemoveAgent(ctx, "a"), ErrUnknownAgent)

	// Removal bounded by its context.
	_, err = p.Send(ctx, "b", headers("stuck"))
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err = p.RemoveAgent(rctx, "b")
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
	assert.Empty(t, p.Agents())
}

func TestReverseConnectionsAreAdopted(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, WithMaxReverseConns(2))
	var mu sync.Mutex
	var refused []error
	path := adoptingListener(t, p, func(err error) {
		mu.Lock()
		refused = append(refused, err)
		mu.Unlock()
	})

	rec := newRecorder("rev")
	srv, err := sdk.NewServer(rec, sdk.WithAgentID("rev"), sdk.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	d, err := sdk.NewReverseDialer(srv, "unix://"+path, sdk.WithConnections(3),
		sdk.WithReconnectBackoff(time.Millisecond, 20*time.Millisecond))
	require.NoError(t, err)
	dctx, stop := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = d.Run(dctx)
	}()
	stopAgent := func() {
		stop()
		<-runDone
		_ = d.Close(context.Background())
		srv.Close()
	}
	t.Cleanup(stopAgent)

	ctx := testCtx(t)
	require.Eventually(t, func() bool {
		s, err := p.AgentStats("rev")
		return err == nil && countState(s, ConnReady) == 2
	}, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(refused) > 0
	}, 5*time.Second, time.Millisecond, "the third connection is refused")
	mu.Lock()
	assert.ErrorIs(t, refused[0], ErrReverseLimit)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(refused[0]))
	mu.Unlock()
	for _, c := range stats(t, p, "rev").Conns {
		assert.True(t, c.Reverse)
	}
	for i := range 10 {
		require.NoError(t, sendRequest(ctx, p, "rev", "r"+itoa(i)))
	}
	assert.Equal(t, int64(20), rec.events.Load())

	// The agent goes away: its connections leave the pool and are not
	// redialled (the agent dials).
	stopAgent()
	require.Eventually(t, func() bool { return len(stats(t, p, "rev").Conns) == 0 }, 5*time.Second, time.Millisecond)
	_, err = p.Send(ctx, "rev", headers("after"))
	assert.ErrorIs(t, err, ErrNoConnAvailable)
}
