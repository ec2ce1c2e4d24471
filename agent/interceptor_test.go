package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

type ctxKey string

// panicky blocks request headers and panics on body chunks.
type panicky struct{ Base }

func (panicky) RequestHeaders(ctx context.Context, _ *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if ctx.Value(ctxKey("outer")) != "set" {
		return nil, agentwire.Errorf(agentwire.CodeFailedPrecondition, "interceptor context lost")
	}
	return Block(403, ""), nil
}

func (panicky) RequestBodyChunk(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	panic("boom")
}

func TestInterceptorsWrapHandler(t *testing.T) {
	t.Parallel()
	var order []string
	type seen struct {
		resp *agentv2.AgentResponse
		err  error
	}
	var results []seen
	record := func(name string) Interceptor {
		return InterceptorFunc(func(next EventFunc) EventFunc {
			return func(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
				order = append(order, name+">")
				if name == "outer" {
					ctx = context.WithValue(ctx, ctxKey("outer"), "set")
				}
				resp, err := next(ctx, ev)
				order = append(order, "<"+name)
				if name == "outer" {
					results = append(results, seen{resp, err})
				}
				return resp, err
			}
		})
	}
	srv, err := NewServer(panicky{}, WithLogger(quietLogger()), WithInterceptors(record("outer")), WithInterceptors(record("inner")))
	require.NoError(t, err)

	headers := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: "r1"}}}}
	resp, err := srv.call(context.Background(), headers)
	require.NoError(t, err)
	assert.Equal(t, uint32(403), resp.GetBlock().GetStatus())
	assert.Equal(t, []string{"outer>", "inner>", "<inner", "<outer"}, order)

	chunk := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r1"}}}
	_, err = srv.call(context.Background(), chunk)
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err))
	require.Len(t, results, 2)
	assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(results[1].err), "interceptors see a panic as an internal error")

	// Unary ProcessEvent goes through the interceptors too.
	order = nil
	out, err := srv.processEvent(context.Background(), headers)
	require.NoError(t, err)
	assert.Equal(t, uint32(403), out.GetResponse().GetBlock().GetStatus())
	assert.Equal(t, "r1", out.GetResponse().GetCorrelationId())
	assert.Equal(t, []string{"outer>", "inner>", "<inner", "<outer"}, order)
}
