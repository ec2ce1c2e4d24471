package pool

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
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
