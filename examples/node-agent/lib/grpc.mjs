// The gRPC transport: ProcessStream of sentinel.agent.v2.AgentServiceV2 over
// plaintext HTTP/2 (h2c), served by @connectrpc/connect-node with only the
// gRPC protocol enabled. One Session per stream.

import http2 from "node:http2";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AgentServiceV2, AgentToProxySchema } from "../../../gen/es/sentinel/agent/v2/agent_pb.js";

/** Queue is an async iterable that others push into: a stream's outbox. */
class Queue {
  #items = [];
  #waiting = null;
  #done = false;
  #error = null;

  push(item) {
    if (this.#done) return;
    this.#items.push(item);
    this.#wake();
  }

  close(error) {
    if (this.#done) return;
    this.#done = true;
    this.#error = error ?? null;
    this.#wake();
  }

  #wake() {
    const w = this.#waiting;
    this.#waiting = null;
    w?.();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      while (this.#items.length > 0) yield this.#items.shift();
      if (this.#done) {
        if (this.#error) throw this.#error;
        return;
      }
      await new Promise((resolve) => (this.#waiting = resolve));
    }
  }
}

/**
 * serveGRPC listens on host:port (port 0 picks a free one) and resolves
 * with { address, close } once listening.
 */
export async function serveGRPC(host, port, newSession, { maxFrameSize, log }) {
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: maxFrameSize,
    writeMaxBytes: maxFrameSize,
    routes(router) {
      // ControlStream and ProcessEvent are left out: they answer UNIMPLEMENTED.
      router.service(AgentServiceV2, {
        async *processStream(requests, ctx) {
          const out = new Queue();
          const session = newSession({
            transport: "grpc",
            send(msg) {
              const size = toBinary(AgentToProxySchema, msg).length;
              if (size > maxFrameSize) throw new RangeError(`message of ${size} bytes exceeds the limit of ${maxFrameSize}`);
              out.push(msg);
            },
            close(err) {
              out.close(err ? new ConnectError(err.message, Code.Internal) : undefined);
            },
          });
          ctx.signal.addEventListener("abort", () => {
            session.end();
            out.close();
          });
          (async () => {
            try {
              for await (const m of requests) {
                session.receive(m);
                if (session.closed) return;
              }
              // The proxy half-closed: answer what is in flight, then end.
              await session.finish();
            } catch (err) {
              if (!ctx.signal.aborted) log(`grpc stream: ${err.message}`);
              session.end();
            } finally {
              out.close();
            }
          })();
          yield* out;
        },
      });
    },
  });
  const server = http2.createServer(handler);
  const sessions = new Set();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address();
  return {
    address: `${a.address}:${a.port}`,
    close() {
      server.close();
      for (const s of sessions) s.destroy();
    },
  };
}
