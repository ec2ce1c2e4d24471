package otel

import (
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/pool"
)

// Interceptor traces and measures events on either side of agentwire,
// as otelconnect's interceptor does for Connect: give it to
// pool.WithInterceptors on the proxy and to agent.WithInterceptors on the
// agent; one Interceptor may serve both. Its [Interceptor.Middleware]
// gives the proxy's HTTP requests their spans, parents of the events'. On the proxy it starts a client
// span per event, writes its trace context into the event, records the
// client metrics, and also traces dials (with [WithDialSpans]), carries
// their trace context in stream headers, bridges agents' metrics reports
// and reports the pool's gauges. On the agent it starts a server span per
// event, child of the proxy's. An Interceptor is safe for concurrent use.
type Interceptor struct {
	cfg    config
	tracer trace.Tracer // nil when tracing is off
	spans  placeholder  // the tracer provider's
	meters placeholder  // the meter provider's
	prop   propagation.TextMapPropagator
	names  []string // span names by kind index

	// The proxy side (client.go, clientconn.go); ins and bridge are nil
	// when metrics are off.
	ins        *clientInstruments
	bridge     *reportBridge
	agentAttrs attrCache[string]
	eventAttrs attrCache[eventKey]
	connAttrs  attrCache[[2]string]
	flowAttrs  attrCache[[3]string]
	conns      sync.Map // [2]string{agent id, state} -> *connCount
	agents     sync.Map // agent id -> *agentState
	// reqs remembers each open request's parent span, for its events sent
	// without one (nil when disabled).
	reqs *traceCache

	// The net/http layer (http.go); http is nil when metrics are off.
	http      *httpInstruments
	httpAttrs attrCache[httpKey]

	// The agent side (server.go).
	duration    metric.Float64Histogram // nil when metrics are off
	serverAttrs attrCache[serverKey]
	cache       *traceCache // nil when disabled
}

var (
	_ pool.Interceptor     = (*Interceptor)(nil)
	_ pool.DialInterceptor = (*Interceptor)(nil)
	_ pool.ConnInterceptor = (*Interceptor)(nil)
	_ pool.Watcher         = (*Interceptor)(nil)
	_ agent.Interceptor    = (*Interceptor)(nil)
)

// NewInterceptor returns an Interceptor. Tracer provider, meter provider
// and propagator default to the OpenTelemetry globals; see
// [WithoutTracing] and [WithoutMetrics] to turn either off.
func NewInterceptor(opts ...Option) (*Interceptor, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	i := &Interceptor{
		cfg:   cfg,
		prop:  cfg.propagator,
		names: spanNames(cfg.serviceName),
		cache: newTraceCache(cfg.traceContexts, cfg.traceContextTTL),
		reqs:  newTraceCache(cfg.traceContexts, cfg.traceContextTTL),
	}
	if !cfg.tracingOff() {
		i.tracer = cfg.tracerProvider.Tracer(instrumentationName)
		i.spans = tracerPlaceholder(cfg.tracerProvider)
	}
	if cfg.metricsOff() {
		return i, nil
	}
	m := cfg.meterProvider.Meter(instrumentationName)
	i.meters = meterPlaceholder(cfg.meterProvider)
	if i.ins, err = newClientInstruments(m); err != nil {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: creating instruments: %w", err)
	}
	i.bridge = newReportBridge(m, &cfg, i.ins.reportDrop)
	if _, err := m.RegisterCallback(i.observeCounts, i.ins.inFlight, i.ins.connections); err != nil {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: registering the count callback: %w", err)
	}
	i.duration, err = m.Float64Histogram(MetricServerDuration,
		metric.WithUnit("s"), metric.WithDescription("Time an agent took to handle an event (an agentwire event is an RPC)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: creating instruments: %w", err)
	}
	if i.http, err = newHTTPInstruments(m); err != nil {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: creating instruments: %w", err)
	}
	return i, nil
}

var (
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)
