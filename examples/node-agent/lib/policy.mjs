// The example policy, the same in every example agent:
//   - a request whose URI starts with /admin is blocked with 403 and the
//     audit tag "admin-blocked";
//   - every allowed request gets the response header "x-agent: node";
//   - every other event is allowed; configure accepts any valid JSON.
// Request-header decisions depend on the path alone (and on the test delay
// header when that hook is on), so they carry a cache directive: a proxy
// with a decision cache reuses them for a minute (docs/protocol.md §17).
// A handler gets the event and an AbortSignal that fires when the proxy
// cancels the request; it returns the AgentResponse fields (without
// correlation id) or throws a PolicyError.

import { create } from "@bufbuild/protobuf";
import { AgentResponseSchema, CacheDirectiveSchema } from "../../../gen/es/sentinel/agent/v2/agent_pb.js";

/** PolicyError is a handler failure reported as AgentResponse.error. */
export class PolicyError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PolicyError";
    this.code = code; // gRPC status code, never 0
  }
}

const INVALID_ARGUMENT = 3;

const allowWithHeader = () =>
  create(AgentResponseSchema, {
    decision: { case: "allow", value: {} },
    responseHeaders: [{ operation: { case: "set", value: { name: "x-agent", value: "node" } } }],
  });

const allow = () => create(AgentResponseSchema, { decision: { case: "allow", value: {} } });

/**
 * sleep waits ms milliseconds, or rejects as soon as signal aborts: how a
 * slow handler notices a cancel.
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * newPolicy returns the handlers. With testDelayHeader set, a request
 * carrying that header (milliseconds, at most 10 s) is decided only after
 * that delay — a test hook that makes cancellation and flow control
 * observable; never enable it in production.
 */
export function newPolicy({ testDelayHeader = "" } = {}) {
  // The directive's scope names everything the decision depends on.
  const cache = () => ({
    ttlMs: 60_000n,
    scope: { path: true, headers: testDelayHeader ? [testDelayHeader] : [] },
    bodyNotInspected: true,
  });
  return {
    async requestHeaders(ev, signal) {
      if (testDelayHeader) {
        const h = ev.headers.find((x) => x.name.toLowerCase() === testDelayHeader);
        const ms = h ? Number.parseInt(h.value, 10) : 0;
        if (ms > 0) await sleep(Math.min(ms, 10_000), signal);
      }
      if (ev.uri.startsWith("/admin")) {
        return create(AgentResponseSchema, {
          decision: { case: "block", value: { status: 403, body: "forbidden by policy\n" } },
          audit: { tags: ["admin-blocked"], ruleIds: ["node-admin-path"], reasonCodes: ["ADMIN_PATH"] },
          cache: cache(),
        });
      }
      const r = allowWithHeader();
      r.cache = create(CacheDirectiveSchema, cache());
      return r;
    },
    async responseHeaders() {
      return allowWithHeader();
    },
    async configure(ev) {
      if (ev.configJson !== "") {
        try {
          JSON.parse(ev.configJson);
        } catch (err) {
          throw new PolicyError(INVALID_ARGUMENT, `config_json is not JSON: ${err.message}`);
        }
      }
      return allow();
    },
    // request_body_chunk, response_body_chunk, request_complete,
    // websocket_frame and guardrail: allow.
    async other() {
      return allow();
    },
  };
}
