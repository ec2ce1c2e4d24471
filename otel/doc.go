// Package otel connects agentwire to OpenTelemetry: traces that continue
// from the proxy into the agents, and metrics through OpenTelemetry
// instruments. Its name clashes with go.opentelemetry.io/otel; import it
// as agentotel:
//
//	import agentotel "github.com/agentwire/agentwire/otel"
//
// One [Interceptor] plugs into either side with one option, as
// otelconnect's does, and may serve both; its [Interceptor.Middleware]
// wraps the proxy's net/http layer:
//
//	ic, err := agentotel.NewInterceptor()
//	p, err := pool.New(pool.WithInterceptors(ic))              // the proxy
//	http.ListenAndServe(addr, ic.Middleware(g.Middleware(up))) // its HTTP side
//	srv, err := agent.NewServer(h, agent.WithInterceptors(ic)) // the agent
//
// A proxied request is one trace: the middleware's server span, a client
// span per event under it, and the agents' spans under those. On the proxy
// the Interceptor starts a client span per event, child of the span in the
// context given to pool.Send, and writes the span's W3C trace context into
// the request_headers event's RequestMetadata (traceparent, tracestate) on
// every transport; on gRPC and Connect the dial's trace context also goes
// into the ProcessStream request headers ([StreamHeaders]; dials get spans
// of their own with [WithDialSpans]). It writes into the event the caller
// passes: do not share one RequestHeadersEvent between concurrent Sends.
//
// A later event of a request sent without a span in its context (a
// request_complete sent in the background) joins its request's trace, and
// when the caller has no span at all the headers' span starts the trace.
//
// On the agent it starts a server span per event, child of the proxy's
// span, and hands the handler a context carrying it. Only request_headers
// events carry trace context; the request's other events become children
// of the proxy span of its headers (see [Interceptor.WrapEvent]), a
// request_complete after a block included.
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
// Metrics (see the Metric constants) follow the OpenTelemetry semantic
// conventions where they define one: rpc.client.call.duration and
// rpc.server.call.duration (rpc.system, rpc.service, rpc.method, plus
// agent, transport, event kind and outcome), http.server.request.duration
// and http.server.active_requests from the middleware. The rest are
// agentwire.client.*: event count; events in flight; connections by
// state; reconnections; flow-control pauses and waits; fail-open answers;
// affinity misses (an event of a request whose pin was lost while open,
// never a request_complete after a block); the pool's open requests,
// sticky sessions and circuit breaker state. An agent's counters start at
// zero when the pool first sees it. Agents' metrics reports are bridged
// into instruments named after the reported metrics, labelled with the
// agent id, with a bounded number of series ([WithReportLimits]). The
// service name comes from the meter and tracer providers' resource
// (OTEL_SERVICE_NAME).
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
