package pool

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trace records what interceptors saw, in order.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trace) add(s string) {
	tr.mu.Lock()
	tr.steps = append(tr.steps, s)
	tr.mu.Unlock()
}

func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.steps)
}

// named is an interceptor that records entering and leaving, with the call
// it saw and the decision it got.
func named(tr *trace, name string) Interceptor {
	return InterceptorFunc(func(next SendFunc) SendFunc {
		return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
			tr.add(name + ">" + c.AgentID + "/" + c.CorrelationID + "/" + c.Type.String())
			resp, err := next(ctx, c)
			d := "error"
			if err == nil {
				d = "allow"
				if resp.GetBlock() != nil {
					d = "block"
				}
			}
			tr.add("<" + name + " " + d)
			return resp, err
		}
	})
}

func TestInterceptorsWrapEveryEventInOrder(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	rec.track = true
	rec.setHook(func(_ context.Context, corr string, _ agentv2.EventType) (*agentv2.AgentResponse, error) {
		if corr == "bad" {
			return sdk.Block(403, "no"), nil
		}
		return nil, nil
	})
	ua := newUnixAgent(t, rec)
	var tr trace
	p := newTestPool(t, WithInterceptors(named(&tr, "outer")), WithInterceptors(named(&tr, "inner")))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	_, err := p.Send(ctx, "waf", headers("good"))
	require.NoError(t, err)
	_, err = p.Send(ctx, "waf", complete("good"))
	require.NoError(t, err)
	resp, err := p.SendSession(ctx, "waf", "ws-1", headers("bad"))
	require.NoError(t, err)
	assert.NotNil(t, resp.GetBlock())
	_, err = p.Send(ctx, "nope", headers("x"))
	assert.Equal(t, agentwire.CodeNotFound, agentwire.CodeOf(err))

	assert.Equal(t, []string{
		"outer>waf/good/EVENT_TYPE_REQUEST_HEADERS", "inner>waf/good/EVENT_TYPE_REQUEST_HEADERS", "<inner allow", "<outer allow",
		"outer>waf/good/EVENT_TYPE_REQUEST_COMPLETE", "inner>waf/good/EVENT_TYPE_REQUEST_COMPLETE", "<inner allow", "<outer allow",
		"outer>waf/bad/EVENT_TYPE_REQUEST_HEADERS", "inner>waf/bad/EVENT_TYPE_REQUEST_HEADERS", "<inner block", "<outer block",
		"outer>nope/x/EVENT_TYPE_REQUEST_HEADERS", "inner>nope/x/EVENT_TYPE_REQUEST_HEADERS", "<inner error", "<outer error",
	}, tr.get())
	assert.Equal(t, 1, stats(t, p, "waf").Sessions, "SendSession kept its session through the chain")
}

func TestInterceptorAnswersWithoutTheAgent(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	rec.track = true
	ua := newUnixAgent(t, rec)
	cached := sdk.Block(429, "cached")
	p := newTestPool(t, WithInterceptors(InterceptorFunc(func(next SendFunc) SendFunc {
		return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
			if c.CorrelationID == "hit" {
				return cached, nil
			}
			return next(ctx, c)
		}
	})))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	resp, err := p.Send(ctx, "waf", headers("hit"))
	require.NoError(t, err)
	assert.Same(t, cached, resp)
	_, err = p.Send(ctx, "waf", headers("miss"))
	require.NoError(t, err)
	_, err = p.Send(ctx, "waf", complete("miss"))
	require.NoError(t, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Empty(t, rec.kinds["hit"], "the agent saw an event the interceptor answered")
	assert.Len(t, rec.kinds["miss"], 2)
}

func TestInterceptorCallsNextTwiceAndChangesTheEvent(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	rec.track = true
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithInterceptors(InterceptorFunc(func(next SendFunc) SendFunc {
		return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
			if c.Type != agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
				return next(ctx, c)
			}
			c.Event.GetRequestHeaders().Uri = "/first"
			if _, err := next(ctx, c); err != nil {
				return nil, err
			}
			c.Event.GetRequestHeaders().Uri = "/second"
			return next(ctx, c)
		}
	})))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	_, err := p.Send(ctx, "waf", headers("twice"))
	require.NoError(t, err)
	_, err = p.Send(ctx, "waf", complete("twice"))
	require.NoError(t, err)
	rec.mu.Lock()
	assert.Equal(t, []string{"/first", "/second"}, rec.uris)
	rec.mu.Unlock()
	assert.Equal(t, uint64(3), stats(t, p, "waf").Requests, "each call of next is one event through the pipeline")
}

func TestNilInterceptorRejected(t *testing.T) {
	t.Parallel()
	_, err := New(WithInterceptors(nil))
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
}

// pipelineRecorder is an interceptor that also wraps dials, sees
// connections and watches the pool, and remembers what it saw.
type pipelineRecorder struct {
	mu      sync.Mutex
	calls   []Call
	errs    []error
	states  []ConnState
	dials   []string
	optsFor []string
	watched *Pool
	stopped bool
}

type ctxKey struct{}

var (
	_ DialInterceptor = (*pipelineRecorder)(nil)
	_ ConnInterceptor = (*pipelineRecorder)(nil)
	_ Watcher         = (*pipelineRecorder)(nil)
)

func (r *pipelineRecorder) WrapSend(next SendFunc) SendFunc {
	return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
		resp, err := next(context.WithValue(ctx, ctxKey{}, c.CorrelationID), c)
		r.mu.Lock()
		r.calls = append(r.calls, *c)
		r.errs = append(r.errs, err)
		r.mu.Unlock()
		return resp, err
	}
}

// WrapDial wraps each connection so that sends check the interceptor's
// context reached them.
func (r *pipelineRecorder) WrapDial(next Dialer) Dialer {
	return func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error) {
		r.mu.Lock()
		r.dials = append(r.dials, endpoint)
		r.mu.Unlock()
		c, err := next(ctx, endpoint, opts...)
		if err != nil {
			return nil, err
		}
		return ctxCheckConn{c}, nil
	}
}

// ctxCheckConn fails sends whose context lacks the interceptor's value.
type ctxCheckConn struct{ transport.Conn }

func (c ctxCheckConn) Send(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	if corr, _ := ev.EventCorrelationID(); ctx.Value(ctxKey{}) != corr {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "the interceptor's context did not reach the connection")
	}
	return c.Conn.Send(ctx, ev)
}

func (r *pipelineRecorder) TransportOptions(agentID string) []transport.Option {
	r.mu.Lock()
	r.optsFor = append(r.optsFor, agentID)
	r.mu.Unlock()
	return []transport.Option{transport.WithProxyID("intercepted", "1")}
}

func (r *pipelineRecorder) ConnStateChange(_, _ string, _, to ConnState) {
	r.mu.Lock()
	r.states = append(r.states, to)
	r.mu.Unlock()
}

func (r *pipelineRecorder) Watch(p *Pool) func() {
	r.mu.Lock()
	r.watched = p
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
	}
}

func TestInterceptorSeesThePipeline(t *testing.T) {
	t.Parallel()
	ir := &pipelineRecorder{}
	p, rec, release, held := pausedAgent(t, WithInterceptors(ir))
	ctx := testCtx(t)
	_, err := p.Send(ctx, "waf", headers("r2"))
	require.ErrorIs(t, err, ErrPaused)
	finishHolds(t, p, release, held)
	var proxyID atomic.Value
	rec.setHook(func(ctx context.Context, _ string, _ agentv2.EventType) (*agentv2.AgentResponse, error) {
		proxyID.Store(sdk.PeerFromContext(ctx).Handshake().GetProxyId())
		return nil, nil
	})
	_, err = p.Send(ctx, "waf", requestBody("unknown", 0, true))
	require.NoError(t, err)
	assert.Equal(t, "intercepted", proxyID.Load(), "the interceptor's transport options reached the connection")

	ir.mu.Lock()
	// hold0, hold1, r2, two completes, the stray body chunk.
	require.Len(t, ir.calls, 6)
	var paused int
	var misses []string
	for _, c := range ir.calls {
		assert.Equal(t, "waf", c.AgentID)
		assert.NotEmpty(t, c.ConnID)
		assert.Equal(t, ir.dials[0], c.Endpoint)
		assert.False(t, c.FailOpen)
		assert.Positive(t, c.Duration)
		if c.AffinityMiss {
			misses = append(misses, c.CorrelationID)
		}
		if c.Pause != nil {
			paused++
			assert.Equal(t, "r2", c.CorrelationID)
			assert.Equal(t, FailClosed, c.Pause.Mode)
			assert.ErrorIs(t, c.Pause.Err, ErrPaused)
		}
	}
	assert.Equal(t, []string{"unknown"}, misses)
	assert.Equal(t, 1, paused)
	assert.Equal(t, []string{"waf"}, ir.optsFor)
	assert.Contains(t, ir.states, ConnReady)
	assert.Contains(t, ir.states, ConnPaused)
	assert.Same(t, p, ir.watched)
	assert.False(t, ir.stopped)
	var failed int
	for _, err := range ir.errs {
		if err != nil {
			failed++
		}
	}
	assert.Equal(t, 1, failed)
	ir.mu.Unlock()

	require.NoError(t, p.Shutdown(ctx))
	ir.mu.Lock()
	assert.True(t, ir.stopped, "Shutdown stops the watcher")
	ir.mu.Unlock()
}

func TestInterceptorSeesFailOpenAndWaits(t *testing.T) {
	t.Parallel()
	t.Run("fail_open", func(t *testing.T) {
		t.Parallel()
		ir := &pipelineRecorder{}
		p, _, release, held := pausedAgent(t, WithInterceptors(ir), WithFlowControl(FailOpen, 0))
		ctx := testCtx(t)
		for _, ev := range []*agentv2.ProxyToAgent{headers("r2"), requestBody("r2", 0, true), complete("r2")} {
			_, err := p.Send(ctx, "waf", ev)
			require.NoError(t, err)
		}
		finishHolds(t, p, release, held)
		ir.mu.Lock()
		defer ir.mu.Unlock()
		var r2 []Call
		for _, c := range ir.calls {
			if c.CorrelationID == "r2" {
				r2 = append(r2, c)
			}
		}
		require.Len(t, r2, 3)
		require.NotNil(t, r2[0].Pause, "the headers met the paused connection")
		assert.Equal(t, FailOpen, r2[0].Pause.Mode)
		assert.NoError(t, r2[0].Pause.Err)
		assert.Zero(t, r2[0].Pause.Waited)
		for _, c := range r2 {
			assert.True(t, c.FailOpen, "the whole request is answered without the agent")
		}
		assert.Nil(t, r2[1].Pause, "the rest of the request skips the agent without flow control")
	})
	t.Run("wait_and_retry", func(t *testing.T) {
		t.Parallel()
		ir := &pipelineRecorder{}
		wait := 20 * time.Millisecond
		p, _, release, held := pausedAgent(t, WithInterceptors(ir), WithFlowControl(WaitAndRetry, wait))
		_, err := p.Send(testCtx(t), "waf", headers("r2"))
		require.ErrorIs(t, err, ErrPaused)
		ir.mu.Lock()
		c := ir.calls[len(ir.calls)-1]
		ir.mu.Unlock()
		finishHolds(t, p, release, held)
		require.Equal(t, "r2", c.CorrelationID)
		require.NotNil(t, c.Pause)
		assert.Equal(t, WaitAndRetry, c.Pause.Mode)
		assert.False(t, c.FailOpen)
		assert.ErrorIs(t, c.Pause.Err, ErrPaused)
		assert.GreaterOrEqual(t, c.Pause.Waited, wait)
		assert.GreaterOrEqual(t, c.Duration, wait)
	})
}
