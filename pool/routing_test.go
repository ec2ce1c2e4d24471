package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/transport"
)

// alternating dials the endpoints in turn, whatever AddAgent asked for: one
// pool agent with connections to several real agents.
func alternating(eps ...string) Dialer {
	var n atomic.Int64
	return func(ctx context.Context, _ string, opts ...transport.Option) (transport.Conn, error) {
		return transport.Dial(ctx, eps[(n.Add(1)-1)%int64(len(eps))], opts...)
	}
}

func sendRequest(ctx context.Context, p *Pool, id, corr string) error {
	if _, err := p.Send(ctx, id, headers(corr)); err != nil {
		return err
	}
	_, err := p.Send(ctx, id, complete(corr))
	return err
}

func TestRoundRobinOverRealConnections(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithPolicy(balancer.RoundRobin))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 4 }, 5*time.Second, 5*time.Millisecond)
	for i := range 400 {
		require.NoError(t, sendRequest(ctx, p, "waf", "r"+itoa(i)))
	}
	// Headers are balanced, request_complete follows them: 200 events on
	// each of the four connections.
	assert.ElementsMatch(t, []int{200, 200, 200, 200}, rec.peers())
	s := stats(t, p, "waf")
	assert.Equal(t, uint64(800), s.Requests)
	assert.Zero(t, s.Errors)
	assert.Zero(t, s.OpenRequests)
	for _, c := range s.Conns {
		assert.Equal(t, uint64(200), c.Requests)
		assert.Positive(t, c.LatencyAvg)
	}
}

func TestLeastInFlightAvoidsSlowAgent(t *testing.T) {
	t.Parallel()
	slow, fast := newRecorder("slow"), newRecorder("fast")
	slow.setHook(func(ctx context.Context, _ string, kind agentv2.EventType) (*agentv2.AgentResponse, error) {
		if kind == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
			time.Sleep(50 * time.Millisecond)
		}
		return nil, nil
	})
	us, uf := newUnixAgent(t, slow), newUnixAgent(t, fast)
	p := newTestPool(t, WithDialer(alternating(us.endpoint(), uf.endpoint())), WithPolicy(balancer.LeastInFlight))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", us.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 4 }, 5*time.Second, 5*time.Millisecond)

	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 13 {
				assert.NoError(t, sendRequest(ctx, p, "waf", "w"+itoa(w)+"-"+itoa(i)))
			}
		})
	}
	wg.Wait()
	// Half the connections go to the slow agent; round robin sends it
	// exactly half the requests. Two random choices pick only slow
	// connections one time in six.
	s, f := slow.events.Load()/2, fast.events.Load()/2
	t.Logf("slow agent %d requests, fast agent %d", s, f)
	assert.Equal(t, int64(208), s+f)
	assert.Less(t, s, int64(83), "the slow agent got more than 40%")
}

func TestDrainingAgentGetsNoNewRequests(t *testing.T) {
	t.Parallel()
	ra, rb := newRecorder("a"), newRecorder("b")
	ua, ub := newUnixAgent(t, ra), newUnixAgent(t, rb)
	p := newTestPool(t, WithDialer(alternating(ua.endpoint(), ub.endpoint())),
		WithConnections(2), WithTransportOptions(transport.WithHealthInterval(10*time.Millisecond)))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, 5*time.Millisecond)

	// Open one request on each agent before a drains.
	require.NoError(t, func() error { _, err := p.Send(ctx, "waf", headers("open-1")); return err }())
	require.NoError(t, func() error { _, err := p.Send(ctx, "waf", headers("open-2")); return err }())
	require.Equal(t, int64(1), ra.events.Load())

	ra.health.Store(int32(agentv2.HealthState_HEALTH_STATE_DRAINING))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnDraining) == 1 }, 5*time.Second, 5*time.Millisecond)
	for i := range 40 {
		require.NoError(t, sendRequest(ctx, p, "waf", "new-"+itoa(i)))
	}
	assert.Equal(t, int64(1), ra.events.Load(), "the draining agent got new requests")
	assert.Equal(t, int64(81), rb.events.Load())

	// The open requests finish where they started.
	for _, corr := range []string{"open-1", "open-2"} {
		_, err := p.Send(ctx, "waf", requestBody(corr, 0, true))
		require.NoError(t, err)
		_, err = p.Send(ctx, "waf", complete(corr))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(3), ra.events.Load())
	assert.Zero(t, stats(t, p, "waf").OpenRequests)
}

func TestKilledAgentFailsFastAndTrafficMoves(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	ra, rb := newRecorder("a"), newRecorder("b")
	ra.setHook(holdUntil("", release)) // a never answers
	ua, ub := newUnixAgent(t, ra), newUnixAgent(t, rb)
	p := newTestPool(t, WithDialer(alternating(ua.endpoint(), ub.endpoint())), WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, 5*time.Millisecond)

	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("k"+itoa(i)))
			errs <- err
		}()
	}
	// Round robin: two go to b and succeed, two hang on a.
	for range 2 {
		require.NoError(t, <-errs)
	}
	require.Eventually(t, func() bool { return ra.active.Load() == 2 }, 5*time.Second, time.Millisecond)

	start := time.Now()
	ua.kill()
	for range 2 {
		err := <-errs
		require.Error(t, err)
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
		assert.False(t, agentwire.IsWireError(err))
	}
	assert.Less(t, time.Since(start), 2*time.Second, "in-flight requests did not fail fast")

	// New requests all go to b (the slot of a may redial b).
	before := rb.events.Load()
	for i := range 20 {
		require.NoError(t, sendRequest(ctx, p, "waf", "after-"+itoa(i)))
	}
	assert.Equal(t, before+40, rb.events.Load())
	// The two requests that were on a fail with a clear error; those on b
	// carry on.
	s := stats(t, p, "waf")
	assert.Equal(t, 2, s.LostRequests)
	assert.Equal(t, 2, s.OpenRequests)
	var lost int
	for i := range 4 {
		corr := "k" + itoa(i)
		_, err := p.Send(ctx, "waf", requestBody(corr, 0, true))
		if err != nil {
			lost++
			assert.ErrorIs(t, err, ErrAffinityLost)
			assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
		}
		_, err2 := p.Send(ctx, "waf", complete(corr))
		assert.Equal(t, err == nil, err2 == nil, "request_complete fails like the rest of its request")
	}
	assert.Equal(t, 2, lost)
	s = stats(t, p, "waf")
	assert.Zero(t, s.OpenRequests)
	assert.Zero(t, s.LostRequests)
}

func TestAgentRestartReconnects(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.NoError(t, sendRequest(ctx, p, "waf", "before"))

	ua.kill()
	require.Eventually(t, func() bool { return len(stats(t, p, "waf").Conns) == 0 }, 5*time.Second, time.Millisecond)
	_, err := p.Send(ctx, "waf", headers("down"))
	assert.ErrorIs(t, err, ErrNoConnAvailable)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	// Several failed attempts: the backoff has reached its 50 ms cap.
	time.Sleep(200 * time.Millisecond)

	ua.start()
	start := time.Now()
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, time.Millisecond)
	back := time.Since(start)
	t.Logf("connections back after %v", back)
	assert.Less(t, back, time.Second, "reconnection took longer than the backoff allows")
	require.NoError(t, sendRequest(ctx, p, "waf", "after"))
}

func TestAddAgentErrors(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	ctx := testCtx(t)
	err := p.AddAgent(ctx, "nobody", "unix://"+shortTempDir(t)+"/missing.sock")
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
	assert.Empty(t, p.Agents(), "a failed agent stays out of the pool")

	err = p.AddAgent(ctx, "bad", "tcp://127.0.0.1:1")
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))

	ua := newUnixAgent(t, newRecorder("a"))
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint(), WithConnections(1)))
	err = p.AddAgent(ctx, "waf", ua.endpoint())
	assert.ErrorIs(t, err, ErrAgentExists)
	assert.Equal(t, agentwire.CodeAlreadyExists, agentwire.CodeOf(err))
	assert.Equal(t, []string{"waf"}, p.Agents())

	_, err = p.Send(ctx, "other", headers("x"))
	assert.ErrorIs(t, err, ErrUnknownAgent)
	assert.Equal(t, agentwire.CodeNotFound, agentwire.CodeOf(err))
	_, err = p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{}}})
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
	assert.True(t, errors.Is(err, transport.ErrNotEvent))
}
