package pool

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

func TestAffinityHoldsAcrossAllEvents(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	rec.track = true
	ua := newUnixAgent(t, rec)
	p := newTestPool(t)
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 4 }, 5*time.Second, 5*time.Millisecond)

	exchange := func(corr string) []*agentv2.ProxyToAgent {
		return []*agentv2.ProxyToAgent{
			headers(corr), requestBody(corr, 0, false), requestBody(corr, 1, false), requestBody(corr, 2, true),
			guardrail(corr), responseHeaders(corr), responseBody(corr, 0, false), responseBody(corr, 1, true),
			websocketFrame(corr), complete(corr),
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				for _, ev := range exchange("w" + itoa(w) + "-" + itoa(i)) {
					_, err := p.Send(ctx, "waf", ev)
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.byCorr, 80)
	used := map[*sdk.Peer]bool{}
	for corr, peers := range rec.byCorr {
		require.Len(t, peers, 1, "request %s was spread over connections", corr)
		for peer, n := range peers {
			assert.Equal(t, 10, n, corr)
			used[peer] = true
		}
		assert.Len(t, rec.kinds[corr], 10)
	}
	assert.Len(t, used, 4, "requests were balanced over the connections")
	s := stats(t, p, "waf")
	assert.Zero(t, s.OpenRequests)
	assert.Zero(t, s.AffinityMisses)
}

func TestAffinityEmptyAfter100kRequests(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	// Every hundredth request is blocked at its headers, which ends its pin
	// before request_complete (which is then balanced).
	rec.setHook(func(_ context.Context, corr string, kind agentv2.EventType) (*agentv2.AgentResponse, error) {
		if kind == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS && strings.HasPrefix(corr, "block") {
			return sdk.Block(403, "no"), nil
		}
		return nil, nil
	})
	ua := newUnixAgent(t, rec)
	p := newTestPool(t)
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	const requests, workers = 100_000, 32
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= requests {
					return
				}
				corr := "r" + itoa(int(i))
				if i%100 == 0 {
					corr = "block" + itoa(int(i))
				}
				if err := sendRequest(ctx, p, "waf", corr); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests (%d events) in %v", requests, 2*requests, time.Since(start))
	s := stats(t, p, "waf")
	assert.Zero(t, s.OpenRequests)
	assert.Zero(t, s.LostRequests)
	assert.Zero(t, p.lookup("waf").aff.Len())
	assert.Equal(t, uint64(2*requests), s.Requests)
	assert.Zero(t, s.Errors)
	assert.Zero(t, s.AffinityMisses, "a completion after a block is no affinity miss")
	assert.Zero(t, s.InFlight)
}

func TestAffinityExpiresAndIsBounded(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	ua := newUnixAgent(t, rec)
	clock := newFakeClock()
	p := newTestPool(t, WithClock(clock.Now), WithAffinity(2, time.Minute))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	_, err := p.Send(ctx, "waf", headers("a"))
	require.NoError(t, err)
	_, err = p.Send(ctx, "waf", headers("b"))
	require.NoError(t, err)
	seen := rec.events.Load()
	_, err = p.Send(ctx, "waf", headers("c"))
	assert.ErrorIs(t, err, ErrAffinityFull)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
	assert.Equal(t, seen, rec.events.Load(), "a refused request does not reach the agent")

	// "a" stays in use, "b" is abandoned.
	clock.Advance(40 * time.Second)
	_, err = p.Send(ctx, "waf", requestBody("a", 0, false))
	require.NoError(t, err)
	clock.Advance(40 * time.Second)
	p.tick(ctx)
	assert.Equal(t, 1, stats(t, p, "waf").OpenRequests)
	_, err = p.Send(ctx, "waf", requestBody("b", 0, false))
	require.NoError(t, err, "an event of an expired request is balanced")
	assert.Equal(t, uint64(1), stats(t, p, "waf").AffinityMisses)
	_, err = p.Send(ctx, "waf", complete("a"))
	require.NoError(t, err)
	assert.Zero(t, stats(t, p, "waf").OpenRequests)
}

func TestStickySessions(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	rec.track = true
	ua := newUnixAgent(t, rec)
	clock := newFakeClock()
	p := newTestPool(t, WithClock(clock.Now), WithStickySessions(2, time.Minute))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 4 }, 5*time.Second, 5*time.Millisecond)

	peerOf := func(corr string) *sdk.Peer {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for peer := range rec.byCorr[corr] {
			return peer
		}
		return nil
	}
	inSession := func(session, corr string) *sdk.Peer {
		t.Helper()
		_, err := p.SendSession(ctx, "waf", session, headers(corr))
		require.NoError(t, err)
		_, err = p.SendSession(ctx, "waf", session, websocketFrame(corr))
		require.NoError(t, err)
		_, err = p.Send(ctx, "waf", complete(corr))
		require.NoError(t, err)
		return peerOf(corr)
	}

	first := inSession("ws-1", "s1-a")
	// Round robin would move on; the session keeps its connection.
	for i := range 5 {
		assert.Same(t, first, inSession("ws-1", "s1-"+itoa(i)))
		clock.Advance(30 * time.Second)
	}
	assert.Equal(t, 1, stats(t, p, "waf").Sessions)

	// Idle past its TTL the session ends and the next request is balanced.
	clock.Advance(2 * time.Minute)
	p.tick(ctx)
	assert.Zero(t, stats(t, p, "waf").Sessions)
	assert.NotSame(t, first, inSession("ws-1", "s1-late"))

	// Bounded: a third session is not bound.
	inSession("ws-2", "s2")
	inSession("ws-3", "s3")
	s := stats(t, p, "waf")
	assert.Equal(t, 2, s.Sessions)
	assert.Equal(t, uint64(1), s.StickyOverflow)
	assert.True(t, p.EndSession("waf", "ws-2"))
	assert.False(t, p.EndSession("waf", "ws-2"))

	// Fallback: when the session's connection stops taking requests, the
	// session moves to another one.
	bound := peerOf("s1-late")
	a := p.lookup("waf")
	e, ok := a.sticky.Get(a.sticky.Key("ws-1"), clock.Now().UnixNano())
	require.True(t, ok)
	e.Conn.setFlag(flagFailing, true)
	a.rebuild()
	moved := inSession("ws-1", "s1-moved")
	assert.NotSame(t, bound, moved)
	assert.Same(t, moved, inSession("ws-1", "s1-stays"))
}

// cancelCounter wraps real connections to count the cancels each receives.
type cancelCounter struct {
	transport.Conn
	cancels atomic.Int32
}

func (c *cancelCounter) Cancel(ctx context.Context, req *agentv2.CancelRequest) error {
	c.cancels.Add(1)
	return c.Conn.Cancel(ctx, req)
}

func TestCancelGoesToTheHoldingConnection(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	var cancelled atomic.Int32
	rec.setHook(func(ctx context.Context, corr string, kind agentv2.EventType) (*agentv2.AgentResponse, error) {
		if kind == agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK {
			<-ctx.Done()
			cancelled.Add(1)
			return nil, ctx.Err()
		}
		return nil, nil
	})
	ua := newUnixAgent(t, rec)
	var mu sync.Mutex
	var conns []*cancelCounter
	dial := func(ctx context.Context, ep string, opts ...transport.Option) (transport.Conn, error) {
		c, err := transport.Dial(ctx, ep, opts...)
		if err != nil {
			return nil, err
		}
		cc := &cancelCounter{Conn: c}
		mu.Lock()
		conns = append(conns, cc)
		mu.Unlock()
		return cc, nil
	}
	p := newTestPool(t, WithDialer(dial))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 4 }, 5*time.Second, 5*time.Millisecond)

	_, err := p.Send(ctx, "waf", headers("c1"))
	require.NoError(t, err)
	body := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, "waf", requestBody("c1", 0, true))
		body <- err
	}()
	require.Eventually(t, func() bool { return rec.active.Load() == 1 }, 5*time.Second, time.Millisecond)

	require.NoError(t, p.Cancel(ctx, "waf", &agentv2.CancelRequest{CorrelationId: "c1", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}))
	err = <-body
	assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "%v", err)
	require.Eventually(t, func() bool { return cancelled.Load() == 1 }, 5*time.Second, time.Millisecond)
	var total int32
	mu.Lock()
	for _, c := range conns {
		total += c.cancels.Load()
	}
	mu.Unlock()
	assert.Equal(t, int32(1), total, "the cancel went to one connection only")
	assert.Zero(t, stats(t, p, "waf").OpenRequests)

	err = p.Cancel(ctx, "waf", &agentv2.CancelRequest{CorrelationId: "c1", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT})
	assert.ErrorIs(t, err, ErrUnknownRequest)
	assert.Equal(t, agentwire.CodeNotFound, agentwire.CodeOf(err))
}
