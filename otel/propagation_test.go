package otel

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestInjectMatchesW3CPropagator checks the fast traceparent formatting
// against propagation.TraceContext, and that extraction reads it back.
func TestInjectMatchesW3CPropagator(t *testing.T) {
	t.Parallel()
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	require.NoError(t, err)
	for _, sc := range []trace.SpanContextConfig{
		{TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
			SpanID: trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31}, TraceFlags: trace.FlagsSampled},
		{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}},
		{TraceID: trace.TraceID{0xff}, SpanID: trace.SpanID{0xff}, TraceFlags: trace.FlagsSampled | trace.FlagsRandom | 0x80},
		{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4}, TraceFlags: trace.FlagsSampled, TraceState: ts},
	} {
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(sc))
		want := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, want)

		ev := headers("p1", "/")
		InjectEvent(ctx, propagation.TraceContext{}, ev)
		md := ev.GetRequestHeaders().GetMetadata()
		assert.Equal(t, want.Get("traceparent"), md.GetTraceparent())
		assert.Equal(t, want.Get("tracestate"), md.GetTracestate())

		got := trace.SpanContextFromContext(ExtractEvent(context.Background(), propagation.TraceContext{}, ev))
		assert.Equal(t, trace.NewSpanContext(sc).TraceID(), got.TraceID())
		assert.Equal(t, trace.NewSpanContext(sc).SpanID(), got.SpanID())
		assert.True(t, got.IsRemote())

		// Any other propagator goes through the carrier.
		ev2 := headers("p2", "/")
		InjectEvent(ctx, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), ev2)
		assert.Equal(t, md.GetTraceparent(), ev2.GetRequestHeaders().GetMetadata().GetTraceparent())
	}

	// Without a span nothing is written; other events carry nothing.
	ev := headers("p3", "/")
	InjectEvent(context.Background(), propagation.TraceContext{}, ev)
	assert.Nil(t, ev.GetRequestHeaders().GetMetadata().Traceparent)
	chunk := bodyChunk("p3")
	InjectEvent(trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})),
		propagation.TraceContext{}, chunk)
	assert.Equal(t, bodyChunk("p3").String(), chunk.String())
}
