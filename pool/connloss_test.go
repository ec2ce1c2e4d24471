package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnectionLossCountsOnceForBreaker: one of two connections ends
// with three requests in flight on it. That is one failure of the agent,
// not three: the breaker (threshold 3) stays closed and the agent keeps
// serving on its other connection. It used to open, refusing every
// request to a healthy agent for the whole cool-down.
func TestConnectionLossCountsOnceForBreaker(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rec := newRecorder("a")
	rec.setHook(holdUntil("hold", release))
	ua := newUnixAgent(t, rec)
	var (
		mu    sync.Mutex
		conns []transport.Conn
	)
	dial := func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error) {
		c, err := transport.Dial(ctx, endpoint, opts...)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	p := newTestPool(t, WithDialer(dial), WithConnections(2), WithCircuitBreaker(3, time.Minute, time.Minute))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, time.Millisecond)

	// Round robin: six held requests, three on each connection.
	errs := make(chan error, 6)
	for i := range 6 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold-"+itoa(i)))
			errs <- err
		}()
	}
	mu.Lock()
	victim := conns[0]
	mu.Unlock()
	require.Eventually(t, func() bool { return victim.Status().InFlight == 3 }, 5*time.Second, time.Millisecond)
	require.NoError(t, victim.Close(ctx))
	for range 3 {
		err := <-errs
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
	}

	s := stats(t, p, "waf")
	assert.Equal(t, BreakerClosed, s.Breaker, "one lost connection opened the breaker")
	assert.Zero(t, s.BreakerOpened)
	require.NoError(t, sendRequest(ctx, p, "waf", "after"))
	close(release)
	for range 3 {
		assert.NoError(t, <-errs)
	}
	for i := range 6 {
		_, _ = p.Send(ctx, "waf", complete("hold-"+itoa(i)))
	}
}
