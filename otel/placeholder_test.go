package otel

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// No test of this package installs a global tracer provider in its own
// process (TestGlobalProviderInstalledLater does it in a child): the
// placeholder is in place for every test here.

func TestGlobalPlaceholderRecognised(t *testing.T) {
	t.Parallel()
	assert.True(t, isGlobalPlaceholder(otelapi.GetTracerProvider()),
		"the OpenTelemetry API moved its global placeholder: update placeholderPkg")
	sdk := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	assert.False(t, isGlobalPlaceholder(sdk))
	assert.False(t, isGlobalPlaceholder(tracenoop.NewTracerProvider()))
	assert.False(t, isGlobalPlaceholder(nil))
	assert.False(t, tracerPlaceholder(sdk).idle())
	assert.True(t, tracerPlaceholder(otelapi.GetTracerProvider()).idle())
	assert.True(t, isGlobalPlaceholder(otelapi.GetMeterProvider()))
	assert.True(t, meterPlaceholder(otelapi.GetMeterProvider()).idle())
	mp := sdkmetric.NewMeterProvider()
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	assert.False(t, meterPlaceholder(mp).idle())
}

var allowResp = &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}

// allow is a pool pipeline that allows every event.
func allow(context.Context, *pool.Call) (*agentv2.AgentResponse, error) { return allowResp, nil }

func headersCall(cid string) *pool.Call {
	return &pool.Call{AgentID: "waf", CorrelationID: cid, Type: agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, Event: headers(cid, "/")}
}

func TestPoolSideSkipsPlaceholderSpans(t *testing.T) { // not parallel: it counts allocations
	o, err := NewInterceptor(WithoutMetrics(), WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	require.True(t, o.spans.idle())
	ctx := context.Background()
	send := o.WrapSend(allow)

	// No caller span: nothing started, nothing written, nothing allocated.
	c := headersCall("c1")
	var got context.Context
	_, err = o.WrapSend(func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		got = ctx
		return allow(ctx, c)
	})(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, ctx, got)
	assert.Nil(t, c.Event.GetRequestHeaders().GetMetadata().Traceparent)
	body := &pool.Call{AgentID: "waf", CorrelationID: "c1", Type: agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK, Event: bodyChunk("c1")}
	allocs := testing.AllocsPerRun(200, func() { _, _ = send(ctx, body) })
	assert.Zero(t, allocs)
	// The same with metrics on the global placeholder meter provider.
	withMetrics, err := NewInterceptor(WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	require.True(t, withMetrics.meters.idle())
	sendM := withMetrics.WrapSend(allow)
	allocs = testing.AllocsPerRun(200, func() { _, _ = sendM(ctx, body) })
	assert.Zero(t, allocs)

	// A remote parent (the proxy's own caller): its context goes to the
	// agent, as a placeholder span would have carried it.
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	c = headersCall("c2")
	_, err = send(trace.ContextWithRemoteSpanContext(ctx, sc), c)
	require.NoError(t, err)
	assert.Equal(t, "00-01020300000000000000000000000000-0405060000000000-01",
		c.Event.GetRequestHeaders().GetMetadata().GetTraceparent())

	// A caller span that records (from a provider of its own): the event
	// gets a (placeholder) child, and the caller's span is not ended.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cctx, caller := tp.Tracer("test").Start(ctx, "caller")
	c = headersCall("c3")
	_, err = send(cctx, c)
	require.NoError(t, err)
	assert.Empty(t, rec.Ended(), "the Interceptor ended the caller's span")
	assert.Contains(t, c.Event.GetRequestHeaders().GetMetadata().GetTraceparent(), caller.SpanContext().TraceID().String())
	caller.End()
	assert.Len(t, rec.Ended(), 1)
}

func TestInterceptorSkipsPlaceholderSpans(t *testing.T) {
	t.Parallel()
	i, err := NewInterceptor(WithoutMetrics(), WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	require.True(t, i.spans.idle())
	ev := headers("c1", "/")
	tp := "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01"
	ev.GetRequestHeaders().Metadata.Traceparent = &tp
	var seen trace.SpanContext
	var recording bool
	_, err = i.WrapEvent(func(ctx context.Context, _ *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
		seen, recording = trace.SpanContextFromContext(ctx), trace.SpanFromContext(ctx).IsRecording()
		return nil, nil
	})(context.Background(), ev)
	require.NoError(t, err)
	// The handler's context carries the proxy's trace context itself.
	assert.Equal(t, "0102030405060708090a0b0c0d0e0f10", seen.TraceID().String())
	assert.Equal(t, "1112131415161718", seen.SpanID().String())
	assert.False(t, recording)
}

// TestGlobalProviderInstalledLater runs in a child process, which installs
// a global tracer provider after a pool's and an agent's Interceptor were
// built on the placeholder: from then on they start spans.
func TestGlobalProviderInstalledLater(t *testing.T) {
	if os.Getenv("AGENTWIRE_OTEL_GLOBAL_CHILD") == "" {
		t.Parallel()
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestGlobalProviderInstalledLater$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AGENTWIRE_OTEL_GLOBAL_CHILD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "child:\n%s", out)
		assert.Contains(t, string(out), "PASS")
		return
	}
	prop := WithPropagator(propagation.TraceContext{})
	o, err := NewInterceptor(prop)
	require.NoError(t, err)
	i, err := NewInterceptor(WithoutMetrics(), prop)
	require.NoError(t, err)
	ctx := context.Background()
	o.ConnStateChange("waf", "conn-1", 0, pool.ConnReady)

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	// The event that starts before the providers come ends after: no span
	// of its own, but it counts, and in flight does not go negative; nor
	// do the connections.
	_, err = o.WrapSend(func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		otelapi.SetTracerProvider(tp)
		otelapi.SetMeterProvider(mp)
		return allow(ctx, c)
	})(ctx, headersCall("c1"))
	require.NoError(t, err)
	require.False(t, o.spans.idle())
	require.False(t, o.meters.idle())
	require.False(t, i.spans.idle())
	o.ConnStateChange("waf", "conn-1", pool.ConnReady, pool.ConnClosed)
	o.ConnStateChange("waf", "conn-2", 0, pool.ConnReady)
	assert.Empty(t, rec.Ended())
	info := headersCall("c2")
	_, err = o.WrapSend(allow)(ctx, info)
	require.NoError(t, err)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	n, ok := intValue(rm, MetricClientInFlight, agentWAF)
	require.True(t, ok)
	assert.Zero(t, n)
	n, ok = intValue(rm, MetricClientEvents, agentWAF)
	require.True(t, ok)
	assert.EqualValues(t, 2, n)
	n, ok = intValue(rm, MetricClientConnections, agentWAF, ConnStateKey.String("ready"))
	require.True(t, ok)
	assert.EqualValues(t, 1, n)

	require.Len(t, rec.Ended(), 1)
	client := rec.Ended()[0]
	assert.Equal(t, trace.SpanKindClient, client.SpanKind())
	assert.Equal(t, "sentinel.agent.v2.AgentServiceV2/RequestHeaders", client.Name())
	assert.Contains(t, info.Event.GetRequestHeaders().GetMetadata().GetTraceparent(), client.SpanContext().SpanID().String())

	_, err = i.WrapEvent(func(context.Context, *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
		return nil, nil
	})(ctx, info.Event)
	require.NoError(t, err)
	require.Len(t, rec.Ended(), 2)
	server := rec.Ended()[1]
	assert.Equal(t, trace.SpanKindServer, server.SpanKind())
	assert.Equal(t, client.SpanContext().SpanID(), server.Parent().SpanID(), "the agent's span is the proxy span's child")
}
