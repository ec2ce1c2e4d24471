// Optional OpenTelemetry tracing: when @opentelemetry/api, core and
// sdk-trace-base are installed, each request_headers event gets a span that
// continues the proxy's trace from RequestMetadata.traceparent/tracestate.
// Without them (or with no traceparent) tracing is a no-op. The provider has
// no exporter: add a span processor to ship the spans somewhere.

/**
 * loadTracing returns { enabled, startEventSpan(name, metadata) }, where
 * startEventSpan returns a span handle with traceparent() and end(), or null.
 */
export async function loadTracing(log) {
  let api, core, sdk;
  try {
    api = await import("@opentelemetry/api");
    core = await import("@opentelemetry/core");
    sdk = await import("@opentelemetry/sdk-trace-base");
  } catch (err) {
    log(`tracing disabled: OpenTelemetry packages not available (${err.code ?? err.message})`);
    return { enabled: false, startEventSpan: () => null };
  }
  const provider = new sdk.BasicTracerProvider({ spanProcessors: [] });
  const tracer = provider.getTracer("agentwire-node-agent");
  const propagator = new core.W3CTraceContextPropagator();

  function startEventSpan(name, metadata) {
    if (!metadata?.traceparent) return null;
    const carrier = { traceparent: metadata.traceparent };
    if (metadata.tracestate) carrier.tracestate = metadata.tracestate;
    const parent = propagator.extract(api.ROOT_CONTEXT, carrier, api.defaultTextMapGetter);
    if (!api.trace.getSpanContext(parent)) return null; // malformed traceparent
    const span = tracer.startSpan(
      name,
      {
        kind: api.SpanKind.SERVER,
        attributes: { "agentwire.correlation_id": metadata.correlationId },
      },
      parent,
    );
    return {
      /** traceparent of this span, for logs and audit metadata. */
      traceparent() {
        const out = {};
        propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), out, api.defaultTextMapSetter);
        return out.traceparent;
      },
      end(error) {
        if (error) span.setStatus({ code: api.SpanStatusCode.ERROR, message: String(error) });
        span.end();
      },
    };
  }
  return { enabled: true, startEventSpan };
}
