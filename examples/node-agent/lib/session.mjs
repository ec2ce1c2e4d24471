// Session is the agent side of one connection, whatever the transport: the
// handshake, events and their responses, cancellation, ping, flow control,
// health, drain. The transport feeds it ProxyToAgent envelopes with
// receive() and gives it two callbacks: send(AgentToProxy) and
// close(error?). The rules it follows are docs/protocol.md §4–§10.

import { create } from "@bufbuild/protobuf";
import {
  AgentResponseSchema,
  AgentToProxySchema,
  AuditMetadataSchema,
  EventType,
  FlowAction,
  HealthState,
} from "../../../gen/es/sentinel/agent/v2/agent_pb.js";
import { ProtocolError } from "./frames.mjs";
import { PolicyError } from "./policy.mjs";

export const PROTOCOL_VERSION = 2;
export const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
export const HANDSHAKE_TIMEOUT_MS = 10_000;

const INTERNAL = 13;
const RESOURCE_EXHAUSTED = 8;

// The eight event cases, and how to find each one's correlation id.
const EVENTS = {
  requestHeaders: (v) => v.metadata?.correlationId ?? "",
  requestBodyChunk: (v) => v.correlationId,
  responseHeaders: (v) => v.correlationId,
  responseBodyChunk: (v) => v.correlationId,
  requestComplete: (v) => v.correlationId,
  websocketFrame: (v) => v.correlationId,
  guardrail: (v) => v.correlationId,
  configure: () => "",
};

const ALL_EVENTS = [
  EventType.REQUEST_HEADERS,
  EventType.REQUEST_BODY_CHUNK,
  EventType.RESPONSE_HEADERS,
  EventType.RESPONSE_BODY_CHUNK,
  EventType.REQUEST_COMPLETE,
  EventType.WEBSOCKET_FRAME,
  EventType.GUARDRAIL_INSPECT,
  EventType.CONFIGURE,
];

const now = () => BigInt(Date.now());

/**
 * Stats are shared by all sessions of one agent: what health reports carry.
 */
export class Stats {
  processed = 0n;
  rejected = 0n;
  cancelled = 0;
  #latencies = []; // last 512 handler durations, ms

  record(ms) {
    this.processed++;
    this.#latencies.push(ms);
    if (this.#latencies.length > 512) this.#latencies.shift();
  }

  load(inFlight, queueDepth) {
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0);
    const avg = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0;
    return {
      inFlight,
      queueDepth,
      avgLatencyMs: avg,
      p50LatencyMs: pct(0.5),
      p95LatencyMs: pct(0.95),
      p99LatencyMs: pct(0.99),
      requestsProcessed: this.processed,
      requestsRejected: this.rejected,
    };
  }
}

export class Session {
  #send;
  #close;
  #log;
  #policy;
  #tracing;
  #stats;
  #opts;

  #state = "handshake"; // handshake → open → closed
  #handshakeTimer;
  #healthTimer;
  #healthIntervalMs = DEFAULT_HEALTH_INTERVAL_MS;
  #draining = false;
  #paused = false;

  // In-flight events by event id (as a string), and the tail of each
  // correlation id's chain: events of one request run in arrival order.
  #inFlight = new Map();
  #tails = new Map();

  /**
   * @param {object} o
   * @param {(msg) => void} o.send         transmit an AgentToProxy
   * @param {(err?: Error) => void} o.close end the connection (err: protocol error)
   * @param {(line: string) => void} o.log
   * @param {object} o.policy              handlers from newPolicy()
   * @param {object} o.tracing             from loadTracing()
   * @param {Stats} o.stats
   * @param {object} o.opts                agentId, maxConcurrency, maxQueue, defaultHealthIntervalMs, maxFrameSize
   */
  constructor({ send, close, log, policy, tracing, stats, opts }) {
    this.#send = send;
    this.#close = close;
    this.#log = log;
    this.#policy = policy;
    this.#tracing = tracing;
    this.#stats = stats;
    this.#opts = opts;
    this.#handshakeTimer = setTimeout(
      () => this.fail(new ProtocolError("no handshake within the handshake timeout")),
      opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    );
  }

  get closed() {
    return this.#state === "closed";
  }

  /** receive handles one envelope from the proxy. */
  receive(msg) {
    if (this.#state === "closed") return;
    const { case: kind, value } = msg.message;
    if (this.#state === "handshake") {
      if (kind !== "handshake") {
        this.fail(new ProtocolError(`first message is ${kind ?? "empty"}, not a handshake`));
        return;
      }
      this.#handshake(value);
      return;
    }
    if (kind in EVENTS) {
      this.#event(msg.eventId, kind, value);
      return;
    }
    switch (kind) {
      case "handshake":
        this.fail(new ProtocolError("second handshake"));
        return;
      case "registrationResponse":
        this.fail(new ProtocolError("registration_response on a connection the agent did not dial"));
        return;
      case "cancel":
        this.#cancel(value.correlationId);
        return;
      case "ping":
        this.#emit(msg.eventId, "pong", {
          sequence: value.sequence,
          pingTimestampMs: value.timestampMs,
          timestampMs: now(),
        });
        return;
      case "pong":
        return; // this agent sends no pings
      case "drain":
        this.#log(`drain requested (reason ${value.reason}, ${value.durationMs} ms)`);
        this.#draining = true;
        this.#health();
        return;
      case "shutdown":
        this.#log(`proxy shutting down (reason ${value.reason}, grace ${value.gracePeriodMs} ms)`);
        return;
      case "configResponse":
        this.#log(`config_response ${value.requestId}: accepted=${value.accepted}`);
        return;
      default:
        // A case newer than this schema (gRPC has no type byte): ignore.
        this.#log(`ignoring unknown message (field unknown to this schema)`);
    }
  }

  /**
   * finish waits for the events in flight to be answered, then ends the
   * session: for a proxy that stopped sending but still reads.
   */
  async finish() {
    while (this.#tails.size > 0 && this.#state !== "closed") {
      await Promise.allSettled([...this.#tails.values()]);
    }
    this.end();
  }

  /** end is called by the transport when the connection is gone. */
  end() {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#healthTimer);
    for (const e of this.#inFlight.values()) e.abort.abort(new Error("connection closed"));
    this.#inFlight.clear();
    this.#tails.clear();
  }

  /** fail closes the connection for a protocol error. */
  fail(err) {
    if (this.#state === "closed") return;
    this.#log(`closing connection: ${err.message}`);
    this.end();
    this.#close(err);
  }

  #handshake(req) {
    clearTimeout(this.#handshakeTimer);
    const encodings = req.supportedEncodings;
    let error = "";
    if (!req.supportedVersions.includes(PROTOCOL_VERSION)) {
      error = `unsupported protocol versions [${req.supportedVersions.join(", ")}]; this agent speaks ${PROTOCOL_VERSION}`;
    } else if (encodings.length > 0 && !encodings.includes("protobuf")) {
      error = `unsupported encodings [${encodings.join(", ")}]; this agent speaks protobuf`;
    }
    if (error) {
      this.#emit(0n, "handshake", { protocolVersion: PROTOCOL_VERSION, success: false, error });
      this.#log(`handshake rejected: ${error}`);
      this.end();
      this.#close(); // after the rejection is sent: not a protocol error
      return;
    }
    this.#healthIntervalMs = req.healthReportIntervalMs || this.#opts.defaultHealthIntervalMs;
    const max = this.#opts.maxConcurrency;
    this.#emit(0n, "handshake", {
      protocolVersion: PROTOCOL_VERSION,
      success: true,
      encoding: "protobuf",
      capabilities: {
        protocolVersion: PROTOCOL_VERSION,
        agentId: this.#opts.agentId,
        name: "agentwire Node example agent",
        version: "0.1.0",
        supportedEvents: ALL_EVENTS,
        features: {
          echoesEventId: true,
          cancellation: true,
          flowControl: true,
          healthReporting: true,
          configPush: true,
          concurrentRequests: max,
        },
        limits: { maxConcurrency: max, maxBodySize: BigInt(this.#opts.maxFrameSize) },
        healthConfig: { reportIntervalMs: this.#healthIntervalMs, includeLoadMetrics: true },
      },
    });
    this.#state = "open";
    this.#log(`handshake from ${req.proxyId} ${req.proxyVersion}; health every ${this.#healthIntervalMs} ms`);
    this.#health();
    this.#healthTimer = setInterval(() => this.#health(), this.#healthIntervalMs);
    this.#healthTimer.unref?.();
  }

  #health() {
    if (this.#state !== "open") return;
    const queued = [...this.#inFlight.values()].filter((e) => !e.started).length;
    this.#emit(0n, "health", {
      agentId: this.#opts.agentId,
      state: this.#draining ? HealthState.DRAINING : HealthState.HEALTHY,
      load: this.#stats.load(this.#inFlight.size - queued, queued),
      timestampMs: now(),
    });
  }

  #event(eventId, kind, value) {
    const correlationId = EVENTS[kind](value);
    const key = String(eventId);
    if (this.#inFlight.size >= this.#opts.maxConcurrency + this.#opts.maxQueue) {
      // The proxy ignored our pause: refuse without running the policy.
      this.#stats.rejected++;
      this.#respondError(eventId, correlationId, RESOURCE_EXHAUSTED, "agent overloaded: too many events in flight");
      return;
    }
    const entry = { eventId, correlationId, abort: new AbortController(), started: false, cancelled: false };
    this.#inFlight.set(key, entry);
    this.#flow();
    const prev = this.#tails.get(correlationId) ?? Promise.resolve();
    // run never rejects, so one failed event cannot stall its request's chain.
    const run = prev
      .then(() => this.#run(entry, kind, value))
      .catch((err) => this.#log(`event ${eventId}: ${err.stack ?? err}`))
      .finally(() => {
        if (this.#tails.get(correlationId) === run) this.#tails.delete(correlationId);
        this.#inFlight.delete(key);
        this.#flow();
      });
    this.#tails.set(correlationId, run);
  }

  async #run(entry, kind, value) {
    if (entry.cancelled || this.#state !== "open") return;
    entry.started = true;
    const start = performance.now();
    const span = kind === "requestHeaders" ? this.#tracing.startEventSpan("agent.request_headers", value.metadata) : null;
    let resp;
    let failure;
    try {
      const handler = this.#policy[kind] ?? this.#policy.other;
      resp = await handler(value, entry.abort.signal);
    } catch (err) {
      failure = err;
    }
    span?.end(failure);
    if (entry.cancelled || this.#state !== "open") {
      this.#stats.cancelled++;
      return; // cancelled: the proxy no longer waits for this answer
    }
    this.#stats.record(performance.now() - start);
    if (failure) {
      const code = failure instanceof PolicyError ? failure.code : INTERNAL;
      this.#respondError(entry.eventId, entry.correlationId, code, failure.message);
      return;
    }
    resp ??= create(AgentResponseSchema, { decision: { case: "allow", value: {} } });
    resp.correlationId = entry.correlationId;
    if (span) {
      resp.audit ??= create(AuditMetadataSchema);
      resp.audit.custom.traceparent = span.traceparent();
    }
    this.#emit(entry.eventId, "response", resp, () =>
      this.#respondError(entry.eventId, entry.correlationId, RESOURCE_EXHAUSTED, "response exceeds the frame size limit"),
    );
  }

  #respondError(eventId, correlationId, code, message) {
    this.#emit(eventId, "response", { correlationId, error: { code, message } });
  }

  #cancel(correlationId) {
    let n = 0;
    for (const e of this.#inFlight.values()) {
      if (correlationId === "" || e.correlationId === correlationId) {
        if (!e.cancelled) n++;
        e.cancelled = true;
        e.abort.abort(new Error("cancelled by the proxy"));
      }
    }
    if (n > 0) this.#log(`cancelled ${n} event(s) of ${correlationId === "" ? "every request" : correlationId}`);
  }

  // Pause the whole connection when the in-flight count reaches the limit;
  // resume when it falls to three quarters of it (docs/protocol.md §9).
  #flow() {
    if (this.#state !== "open") return;
    const max = this.#opts.maxConcurrency;
    const n = this.#inFlight.size;
    let action;
    if (!this.#paused && n >= max) action = FlowAction.PAUSE;
    else if (this.#paused && n <= Math.floor((max * 3) / 4)) action = FlowAction.RESUME;
    else return;
    this.#paused = action === FlowAction.PAUSE;
    // correlationId left unset: the signal applies to the whole connection.
    this.#emit(0n, "flowControl", { action, timestampMs: now() });
  }

  #emit(eventId, kind, value, onTooLarge) {
    const msg = create(AgentToProxySchema, { eventId, message: { case: kind, value } });
    try {
      this.#send(msg);
    } catch (err) {
      if (err instanceof RangeError && onTooLarge) onTooLarge();
      else this.#log(`send ${kind}: ${err.message}`);
    }
  }
}
