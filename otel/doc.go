// Package otel connects agentwire to OpenTelemetry: traces that continue
// from the proxy into the agents, and metrics through OpenTelemetry
// instruments. Its name clashes with go.opentelemetry.io/otel; import it
// as agentotel:
//
//	import agentotel "github.com/agentwire/agentwire/otel"
//
// One [Interceptor] plugs into either side with one option, as
// otelconnect's does, and may serve both:
//
//	ic, err := agentotel.NewInterceptor()
//	p, err := pool.New(pool.WithInterceptors(ic))              // the proxy
//	srv, err := agent.NewServer(h, agent.WithInterceptors(ic)) // the agent
//
// On the proxy it starts a client span per event, child of the span in the
// context given to pool.Send, and writes the span's W3C trace context into
// the request_headers event's RequestMetadata (traceparent, tracestate) on
// every transport; on gRPC and Connect the dial's trace context also goes
// into the ProcessStream request headers ([StreamHeaders]; dials get spans
// of their own with [WithDialSpans]). It writes into the event the caller
// passes: do not share one RequestHeadersEvent between concurrent Sends.
//
// On the agent it starts a server span per event, child of the proxy's
// span, and hands the handler a context carrying it. Only request_headers
// events carry trace context; the request's other events become children
// of the proxy span of its headers (see [Interceptor.WrapEvent]).
//
// Spans follow the OpenTelemetry RPC conventions: named
// "<service>/<Method>" (Method is the Handler method, for example
// "sentinel.agent.v2.AgentServiceV2/RequestHeaders"), with rpc.system
// "agentwire", rpc.service, rpc.method and rpc.grpc.status_code (0 for a
// decision), plus agentwire.agent.id, agentwire.transport,
// agentwire.event.kind, agentwire.correlation_id, agentwire.event.id,
// agentwire.connection.id and agentwire.decision. Span events mark
// flow-control waits ([EventFlowControl]), affinity misses
// ([EventAffinityMiss]) and fail-open answers ([EventFailOpen]). The span
// status comes from this table:
//
//	outcome                                         proxy span   agent span
//	a decision (allow, block, redirect, challenge)  unset        unset
//	  block, redirect, challenge with WithBlockAsError  error    error
//	allowed by the pool without the agent (fail-open)  unset     -
//	error code Unknown, DeadlineExceeded,
//	  Unimplemented, Internal, Unavailable, DataLoss   error     error
//	any other error code (Canceled, InvalidArgument,
//	  ResourceExhausted, FailedPrecondition, ...)      error     unset
//
// The proxy side records agentwire.client.* metrics (see the Metric
// constants): event count and duration by agent, transport, event kind and
// outcome; events in flight; connections by state; reconnections;
// flow-control pauses and waits; fail-open answers; affinity misses; and
// the pool's open requests, sticky sessions and circuit breaker state.
// Agents' metrics reports are bridged into instruments named after the
// reported metrics, labelled with the agent id, with a bounded number of
// series ([WithReportLimits]). The agent side records
// agentwire.server.event.duration.
//
// Tracer provider, meter provider and propagator default to the
// OpenTelemetry globals, as in otelconnect; [WithTracerProvider],
// [WithMeterProvider] and [WithPropagator] override them, [WithoutTracing]
// and [WithoutMetrics] turn them off. The global propagator does nothing
// until otel.SetTextMapPropagator is called: set it (usually to
// propagation.TraceContext{}) or pass WithPropagator, on both sides, or
// agent spans start new traces. Built on the global tracer and meter
// providers before the program installs any, an Interceptor starts no
// spans and records no measurements (the placeholders would drop them) and
// costs no allocation per event; both start as soon as
// otel.SetTracerProvider and otel.SetMeterProvider are called.
package otel
