#!/usr/bin/env node
// An agentwire agent in plain JavaScript (Node 20, ES modules), written from
// docs/protocol.md with nothing but the generated stubs in gen/es, the
// @bufbuild/protobuf runtime, @connectrpc/connect-node for gRPC and node:net
// for the Unix socket.
//
//   node examples/node-agent/agent.mjs --uds /run/agent.sock
//   node examples/node-agent/agent.mjs --grpc 127.0.0.1:50051
//
// Both flags may be given together. Once every listener is up it prints one
// line on stdout: "ready" followed by the addresses, for example
// "ready uds=/run/agent.sock grpc=127.0.0.1:50051" (with --grpc HOST:0 the
// port is the one the system picked). Logs go to stderr.
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set (for example http://127.0.0.1:4318)
// the request spans are exported over OTLP/HTTP; SIGTERM and SIGINT flush
// them before exiting.

import { parseArgs } from "node:util";
import { DEFAULT_MAX_FRAME } from "./lib/frames.mjs";
import { serveGRPC } from "./lib/grpc.mjs";
import { newPolicy } from "./lib/policy.mjs";
import { DEFAULT_HEALTH_INTERVAL_MS, Session, Stats } from "./lib/session.mjs";
import { loadTracing } from "./lib/tracing.mjs";
import { serveUnix } from "./lib/uds.mjs";

const usage = `usage: node agent.mjs [--uds PATH] [--grpc HOST:PORT] [options]
  --uds PATH                 listen on a Unix socket (framed protocol)
  --grpc HOST:PORT           serve gRPC ProcessStream over plaintext HTTP/2 (port 0: any free port)
  --agent-id ID              agent id in the handshake and health reports (node-agent)
  --max-concurrency N        events handled at once per connection before pausing the proxy (64)
  --max-queue N              events queued beyond that before refusing them (64)
  --health-interval-ms MS    health interval when the proxy asks for none (${DEFAULT_HEALTH_INTERVAL_MS})
  --max-frame-size BYTES     largest frame or message, in and out (${DEFAULT_MAX_FRAME})
  --test-delay-header NAME   test hook: delay a request by the milliseconds in this header
  --quiet                    no logs on stderr`;

function fatal(msg) {
  process.stderr.write(`node-agent: ${msg}\n${usage}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      uds: { type: "string" },
      grpc: { type: "string" },
      "agent-id": { type: "string", default: "node-agent" },
      "max-concurrency": { type: "string", default: "64" },
      "max-queue": { type: "string", default: "64" },
      "health-interval-ms": { type: "string", default: String(DEFAULT_HEALTH_INTERVAL_MS) },
      "max-frame-size": { type: "string", default: String(DEFAULT_MAX_FRAME) },
      "test-delay-header": { type: "string", default: "" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (err) {
  fatal(err.message);
}
if (args.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
if (!args.uds && !args.grpc) fatal("give --uds PATH, --grpc HOST:PORT, or both");

const positive = (name) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n <= 0) fatal(`--${name} must be a positive integer`);
  return n;
};
const opts = {
  agentId: args["agent-id"],
  maxConcurrency: positive("max-concurrency"),
  maxQueue: positive("max-queue"),
  defaultHealthIntervalMs: positive("health-interval-ms"),
  maxFrameSize: positive("max-frame-size"),
};

const log = args.quiet ? () => {} : (line) => process.stderr.write(`node-agent: ${line}\n`);
const policy = newPolicy({ testDelayHeader: args["test-delay-header"].toLowerCase() });
const tracing = await loadTracing(log);
const stats = new Stats();

let connections = 0;
function newSession({ transport, send, close }) {
  const id = ++connections;
  const prefix = `${transport}#${id}: `;
  return new Session({ send, close, log: (l) => log(prefix + l), policy, tracing, stats, opts });
}

const listeners = [];
const ready = [];
try {
  if (args.uds) {
    const l = await serveUnix(args.uds, newSession, { maxFrameSize: opts.maxFrameSize, log });
    listeners.push(l);
    ready.push(`uds=${l.address}`);
  }
  if (args.grpc) {
    const i = args.grpc.lastIndexOf(":");
    if (i <= 0) fatal(`--grpc ${args.grpc}: want HOST:PORT`);
    const host = args.grpc.slice(0, i).replace(/^\[(.*)\]$/, "$1");
    const port = Number(args.grpc.slice(i + 1));
    if (!Number.isInteger(port) || port < 0 || port > 65535) fatal(`--grpc ${args.grpc}: bad port`);
    const l = await serveGRPC(host, port, newSession, { maxFrameSize: opts.maxFrameSize, log });
    listeners.push(l);
    ready.push(`grpc=${l.address}`);
  }
} catch (err) {
  for (const l of listeners) l.close();
  process.stderr.write(`node-agent: listen: ${err.message}\n`);
  process.exit(1);
}

const tracingState = !tracing.enabled ? "disabled" : tracing.exporting ? `exporting to ${tracing.endpoint}` : "enabled (not exporting)";
log(`tracing ${tracingState}; listening on ${ready.join(" ")}`);
process.stdout.write(`ready ${ready.join(" ")}\n`);

// On SIGINT or SIGTERM: stop listening, export the spans not yet sent
// (bounded), exit. A second signal exits at once.
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log(`${sig}: stopping`);
    for (const l of listeners) l.close();
    tracing.shutdown().finally(() => process.exit(0));
  });
}
