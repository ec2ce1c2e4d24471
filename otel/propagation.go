package otel

import (
	"context"
	"encoding/hex"
	"strings"
	"unsafe"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// W3C trace context keys, the only ones agentwire events carry.
const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
)

// metadataCarrier reads and writes the trace context fields of an event's
// RequestMetadata. Keys other than traceparent and tracestate are dropped.
type metadataCarrier struct{ md *agentv2.RequestMetadata }

var _ propagation.TextMapCarrier = metadataCarrier{}

// Get returns copies: an agent's event may borrow its connection's read
// buffer (agent.WithBorrowedEvents), and a span context outlives the event.
func (c metadataCarrier) Get(key string) string {
	switch key {
	case traceparentKey:
		return strings.Clone(c.md.GetTraceparent())
	case tracestateKey:
		return strings.Clone(c.md.GetTracestate())
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) {
	switch key {
	case traceparentKey:
		c.md.Traceparent = &value
	case tracestateKey:
		c.md.Tracestate = &value
	}
}

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, 2)
	if c.md.Traceparent != nil {
		keys = append(keys, traceparentKey)
	}
	if c.md.Tracestate != nil {
		keys = append(keys, tracestateKey)
	}
	return keys
}

// requestMetadata returns the metadata of a request_headers event, creating
// it if absent, and nil for other events: only request headers carry trace
// context.
func requestMetadata(ev *agentv2.ProxyToAgent) *agentv2.RequestMetadata {
	rh, ok := ev.GetMessage().(*agentv2.ProxyToAgent_RequestHeaders)
	if !ok || rh.RequestHeaders == nil {
		return nil
	}
	if rh.RequestHeaders.Metadata == nil {
		rh.RequestHeaders.Metadata = &agentv2.RequestMetadata{}
	}
	return rh.RequestHeaders.Metadata
}

// injectMetadata writes ctx's trace context into md with p. For the plain
// W3C propagator it formats traceparent itself, in one allocation: this is
// the hot path of every event.
func injectMetadata(ctx context.Context, p propagation.TextMapPropagator, md *agentv2.RequestMetadata) {
	if _, ok := p.(propagation.TraceContext); !ok {
		p.Inject(ctx, metadataCarrier{md})
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	if ts := sc.TraceState(); ts.Len() > 0 {
		s := ts.String()
		md.Tracestate = &s
	}
	md.Traceparent = formatTraceparent(sc)
}

// traceparentBox holds a traceparent string and its bytes in one
// allocation.
type traceparentBox struct {
	s string
	b [55]byte // "00-" trace id "-" span id "-" flags
}

// formatTraceparent returns sc as a W3C traceparent (version 00), keeping
// only the flags the specification defines (sampled, random), as
// propagation.TraceContext does.
func formatTraceparent(sc trace.SpanContext) *string {
	box := new(traceparentBox)
	b := box.b[:]
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], flags[:])
	// The bytes are never written again: the string may alias them.
	box.s = unsafe.String(&box.b[0], len(box.b))
	return &box.s
}

// InjectEvent writes the trace context of ctx into ev's RequestMetadata
// (traceparent, tracestate) with p when ev is a request_headers event, and
// does nothing otherwise. The [Interceptor] does this for events sent
// through a pool; use InjectEvent when calling a transport.Conn directly.
func InjectEvent(ctx context.Context, p propagation.TextMapPropagator, ev *agentv2.ProxyToAgent) {
	if md := requestMetadata(ev); md != nil {
		injectMetadata(ctx, p, md)
	}
}

// ExtractEvent returns ctx with the remote trace context carried by ev's
// RequestMetadata, or ctx itself when ev carries none.
func ExtractEvent(ctx context.Context, p propagation.TextMapPropagator, ev *agentv2.ProxyToAgent) context.Context {
	rh, ok := ev.GetMessage().(*agentv2.ProxyToAgent_RequestHeaders)
	if !ok || rh.RequestHeaders.GetMetadata().GetTraceparent() == "" {
		return ctx
	}
	return p.Extract(ctx, metadataCarrier{rh.RequestHeaders.Metadata})
}

// StreamHeaders returns a transport option that writes the trace context
// of each dial's context into the ProcessStream request headers (gRPC
// metadata) of the gRPC and Connect transports, so that gRPC
// instrumentation on the agent sees the stream as part of the dial's trace.
func StreamHeaders(p propagation.TextMapPropagator) transport.Option {
	return transport.WithStreamHeaders(func(ctx context.Context, set func(key, value string)) {
		p.Inject(ctx, setCarrier(set))
	})
}

// setCarrier adapts a header setter for injection only.
type setCarrier func(key, value string)

func (setCarrier) Get(string) string       { return "" }
func (s setCarrier) Set(key, value string) { s(key, value) }
func (setCarrier) Keys() []string          { return nil }

// grpcCarrier reads incoming gRPC metadata, for unary ProcessEvent calls.
type grpcCarrier metadata.MD

func (c grpcCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c grpcCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c grpcCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
