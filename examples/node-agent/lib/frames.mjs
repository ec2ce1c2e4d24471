// Framing of the Unix-socket and reverse-connection transports
// (docs/protocol.md §2): [u32 big-endian length][u8 type][envelope], where
// length counts the type byte and the payload, and the type byte names the
// oneof case the envelope sets. The type ids are read from the schema's
// (sentinel.agent.v2.frame_type) option, not written down a second time.

import { fromBinary, getOption, toBinary } from "@bufbuild/protobuf";
import { AgentToProxySchema, ProxyToAgentSchema } from "../../../gen/es/sentinel/agent/v2/agent_pb.js";
import { frame_type } from "../../../gen/es/sentinel/agent/v2/options_pb.js";

/** Size of a frame's length and type prefix. */
export const HEADER_SIZE = 5;

/** Default limit of a frame's type byte plus payload: 16 MiB. */
export const DEFAULT_MAX_FRAME = 16 << 20;

/**
 * frameTable maps an envelope's oneof cases to frame type ids and back,
 * from the frame_type option on each case.
 */
function frameTable(schema) {
  const byType = new Map();
  const byCase = new Map();
  for (const field of schema.oneofs[0].fields) {
    const type = getOption(field, frame_type);
    if (!type) throw new Error(`${schema.typeName}.${field.name} has no frame_type option`);
    byType.set(type, field.localName);
    byCase.set(field.localName, type);
  }
  return { byType, byCase };
}

const incoming = frameTable(ProxyToAgentSchema);
const outgoing = frameTable(AgentToProxySchema);

/** A protocol error: the connection must be closed (docs/protocol.md §12). */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * encodeFrame encodes an AgentToProxy envelope as one frame. It throws a
 * RangeError when the frame would exceed max bytes (type byte plus payload).
 */
export function encodeFrame(msg, max = DEFAULT_MAX_FRAME) {
  const type = outgoing.byCase.get(msg.message.case);
  if (type === undefined) throw new Error(`AgentToProxy case ${msg.message.case} has no frame type`);
  const payload = toBinary(AgentToProxySchema, msg);
  if (payload.length + 1 > max) {
    throw new RangeError(`frame of ${payload.length + 1} bytes exceeds the limit of ${max}`);
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt32BE(payload.length + 1, 0);
  frame[4] = type;
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/**
 * FrameReader turns the chunks of a byte stream into ProxyToAgent
 * envelopes. It keeps the chunks as they came and copies each payload once,
 * so a large frame arriving in many pieces costs linear time, and it checks
 * the announced length against the limit before buffering anything for it.
 */
export class FrameReader {
  #chunks = [];
  #buffered = 0;
  #max;
  #header = null; // { length, type } of the frame being read
  /** Frames of unknown type skipped so far. */
  unknownFrames = 0;

  constructor(max = DEFAULT_MAX_FRAME) {
    this.#max = max;
  }

  /** Bytes received but not yet consumed as whole frames. */
  get buffered() {
    return this.#buffered;
  }

  /**
   * push adds a chunk and returns the envelopes it completed. It throws a
   * ProtocolError on a zero-length, oversize or malformed frame, or on one
   * whose type byte does not name the case its payload sets.
   */
  push(chunk) {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out = [];
    for (;;) {
      if (this.#header === null) {
        // Judge the length as soon as its 4 bytes are here: a zero-length
        // frame has no type byte to wait for.
        if (this.#buffered < 4) break;
        const length = this.#take(4).readUInt32BE(0);
        if (length === 0) throw new ProtocolError("zero-length frame");
        if (length > this.#max) {
          throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.#max}`);
        }
        this.#header = { length, type: -1 };
      }
      if (this.#header.type < 0) {
        if (this.#buffered < 1) break;
        this.#header.type = this.#take(1)[0];
      }
      const size = this.#header.length - 1;
      if (this.#buffered < size) break;
      const { type } = this.#header;
      this.#header = null;
      const payload = this.#take(size);
      const expected = incoming.byType.get(type);
      if (expected === undefined) {
        // A newer peer's frame type: skip it, never fatal.
        this.unknownFrames++;
        continue;
      }
      let msg;
      try {
        msg = fromBinary(ProxyToAgentSchema, payload);
      } catch (err) {
        throw new ProtocolError(`malformed ${expected} frame: ${err.message}`);
      }
      if (msg.message.case !== expected) {
        throw new ProtocolError(
          `frame type 0x${type.toString(16).padStart(2, "0")} (${expected}) carries ${msg.message.case ?? "no message"}`,
        );
      }
      out.push(msg);
    }
    return out;
  }

  /** inFrame reports whether the stream stopped inside a frame. */
  get inFrame() {
    return this.#header !== null || this.#buffered > 0;
  }

  #take(n) {
    const first = this.#chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }
}
