package otel

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// TestCompleteOnAnotherConnection blocks requests on a pool of two
// connections: the request_complete that follows each block is balanced
// (its pin ended with the block) and may reach the agent on the other
// connection; it still joins the request's trace.
func TestCompleteOnAnotherConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{conns: 2})
	require.Eventually(t, func() bool {
		n, _ := intValue(e.collect(), MetricClientConnections, agentWAF, ConnStateKey.String("ready"))
		return n == 2
	}, waitFor, 5*time.Millisecond, "two ready connections")
	conns := map[string]bool{}
	for i := range 8 {
		cid := fmt.Sprintf("cc%d", i)
		ctx, root := e.root()
		_, err := e.pool.Send(ctx, "waf", headers(cid, "/block"))
		require.NoError(t, err)
		root.End()
		_, err = e.pool.Send(context.Background(), "waf", complete(cid))
		require.NoError(t, err)
		ph := e.span(trace.SpanKindClient, "RequestHeaders", cid)
		pc := e.span(trace.SpanKindClient, "RequestComplete", cid)
		if attrOf(ph, ConnIDKey) != attrOf(pc, ConnIDKey) {
			conns[cid] = true
		}
		assertChild(t, ph, e.span(trace.SpanKindServer, "RequestComplete", cid))
	}
	t.Logf("%d of 8 completions went on another connection than their headers", len(conns))
}
