package otel

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestCompleteAfterBlockStaysInTrace sends request_complete after a block
// without the caller's span, as a proxy's background completion does: it
// joins the request's trace on both sides and is no affinity miss.
func TestCompleteAfterBlockStaysInTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx, root := e.root()
	resp, err := e.pool.Send(ctx, "waf", headers("cb", "/block"))
	require.NoError(t, err)
	require.NotNil(t, resp.GetBlock())
	root.End()
	_, err = e.pool.Send(context.Background(), "waf", complete("cb"))
	require.NoError(t, err)

	ph := e.span(trace.SpanKindClient, "RequestHeaders", "cb")
	pc := e.span(trace.SpanKindClient, "RequestComplete", "cb")
	assert.Equal(t, root.SpanContext().SpanID(), pc.Parent().SpanID(), "the proxy's complete span is a child of the request span")
	assert.False(t, hasEvent(pc, EventAffinityMiss))
	ac := e.span(trace.SpanKindServer, "RequestComplete", "cb")
	assertChild(t, ph, ac)
	n, ok := intValue(e.collect(), MetricClientAffinityMiss, agentWAF)
	assert.True(t, ok, "the affinity miss counter is there at zero")
	assert.Zero(t, n)
	assert.Zero(t, e.pc.reqs.len())
	assert.Zero(t, e.ic.cache.len())
}

// TestNoCallerSpanOneTrace sends a request's events with no span in the
// context: the headers span starts the trace and the later events are its
// children.
func TestNoCallerSpanOneTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	for _, ev := range []func() error{
		func() error { _, err := e.pool.Send(ctx, "waf", headers("ns", "/login")); return err },
		func() error { _, err := e.pool.Send(ctx, "waf", bodyChunk("ns")); return err },
		func() error { _, err := e.pool.Send(ctx, "waf", complete("ns")); return err },
	} {
		require.NoError(t, ev())
	}
	ph := e.span(trace.SpanKindClient, "RequestHeaders", "ns")
	assert.False(t, ph.Parent().IsValid(), "the headers span starts the trace")
	for _, m := range []string{"RequestBodyChunk", "RequestComplete"} {
		assertChild(t, ph, e.span(trace.SpanKindClient, m, "ns"))
		assertChild(t, ph, e.span(trace.SpanKindServer, m, "ns"))
	}
	assert.Zero(t, e.pc.reqs.len(), "request_complete forgets the request")
}
