// Optional OpenTelemetry tracing: when @opentelemetry/api, core, resources
// and sdk-trace-base are installed, each request_headers event gets a span
// that continues the proxy's trace from RequestMetadata.traceparent/tracestate.
// Without them (or with no traceparent) tracing is a no-op.
//
// Spans are exported over OTLP/HTTP (protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, through a batch span processor
// (OTEL_BSP_* tune it); otherwise they are only used for the traceparent the
// agent hands back. The service name is "agentwire-node-agent" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says otherwise.

export const SERVICE_NAME = "agentwire-node-agent";

// How long shutdown waits for the last spans to be exported.
const SHUTDOWN_TIMEOUT_MS = 5000;

/**
 * loadTracing returns { enabled, exporting, startEventSpan(name, metadata),
 * shutdown() }. startEventSpan returns a span handle with traceparent() and
 * end(), or null. shutdown() exports the spans not yet sent (bounded by
 * SHUTDOWN_TIMEOUT_MS) and never rejects.
 */
export async function loadTracing(log) {
  const env = process.env;
  let api, core, resources, sdk;
  try {
    api = await import("@opentelemetry/api");
    core = await import("@opentelemetry/core");
    resources = await import("@opentelemetry/resources");
    sdk = await import("@opentelemetry/sdk-trace-base");
  } catch (err) {
    log(`tracing disabled: OpenTelemetry packages not available (${err.code ?? err.message})`);
    return { enabled: false, exporting: false, startEventSpan: () => null, shutdown: async () => {} };
  }

  const spanProcessors = [];
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint) {
    try {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
      // The exporter reads the endpoint, headers, timeout and compression
      // from the OTEL_EXPORTER_OTLP_* variables itself.
      spanProcessors.push(new sdk.BatchSpanProcessor(new OTLPTraceExporter()));
      // Export failures are reported through the diag logger; send its
      // warnings and errors to the agent's log.
      const diagLine = (level) => (msg, ...rest) =>
        log(`otel ${level}: ${[msg, ...rest].map(brief).join(" ")}`);
      api.diag.setLogger(
        { error: diagLine("error"), warn: diagLine("warn"), info() {}, debug() {}, verbose() {} },
        { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true },
      );
    } catch (err) {
      log(`tracing: not exporting spans to ${endpoint}: ${err.code ?? err.message}`);
    }
  }

  const resource = resources
    .resourceFromAttributes({ "service.name": SERVICE_NAME })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.BasicTracerProvider({ resource, spanProcessors });
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

  let shutdownPromise;
  function shutdown() {
    shutdownPromise ??= new Promise((resolve) => {
      const timer = setTimeout(() => {
        log(`tracing: spans not exported within ${SHUTDOWN_TIMEOUT_MS} ms of shutdown; dropping them`);
        resolve();
      }, SHUTDOWN_TIMEOUT_MS);
      timer.unref();
      provider.shutdown().then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (err) => {
          clearTimeout(timer);
          log(`tracing: shutdown: ${err.message}`);
          resolve();
        },
      );
    });
    return shutdownPromise;
  }

  return { enabled: true, exporting: spanProcessors.length > 0, endpoint, startEventSpan, shutdown };
}

// brief renders a diag argument on one line: errors (which the SDK's error
// handler passes as JSON text) by their message.
function brief(x) {
  if (x instanceof Error) return x.message;
  if (typeof x === "string" && x.startsWith("{")) {
    try {
      const o = JSON.parse(x);
      if (typeof o?.message === "string") return o.message;
    } catch {}
  }
  return String(x);
}
