// The Unix-socket transport: frames (lib/frames.mjs) over a stream socket
// the agent listens on, one Session per connection.

import fs from "node:fs";
import net from "node:net";
import { FrameReader, ProtocolError, encodeFrame } from "./frames.mjs";

/**
 * serveUnix listens on path (replacing a stale socket file) with mode 0600
 * and resolves with the server once it is listening. newSession({transport,
 * send, close}) builds the Session of each connection.
 */
export async function serveUnix(path, newSession, { maxFrameSize, log }) {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  const conns = new Set();
  const server = net.createServer((sock) => {
    conns.add(sock);
    const reader = new FrameReader(maxFrameSize);
    const session = newSession({
      transport: "uds",
      send(msg) {
        const frame = encodeFrame(msg, maxFrameSize); // throws RangeError when too large
        if (sock.destroyed || sock.writableEnded) return;
        // Stop reading new events while the proxy does not read our answers.
        if (!sock.write(frame)) sock.pause();
      },
      close(err) {
        if (err) sock.destroy();
        else sock.end(); // flush what was sent (a handshake rejection), then FIN
      },
    });
    sock.on("drain", () => sock.resume());
    sock.on("data", (chunk) => {
      if (session.closed) return;
      let msgs;
      try {
        msgs = reader.push(chunk);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        session.fail(err);
        return;
      }
      for (const m of msgs) {
        session.receive(m);
        if (session.closed) return;
      }
    });
    sock.on("end", () => {
      if (reader.inFrame) log("connection ended inside a frame (truncated)");
      // The proxy will send nothing more; answer what is in flight, then close.
      session.finish().then(() => sock.end());
    });
    sock.on("error", (err) => log(`uds connection: ${err.message}`));
    sock.on("close", () => {
      conns.delete(sock);
      session.end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  fs.chmodSync(path, 0o600);
  return {
    address: path,
    close() {
      server.close();
      for (const s of conns) s.destroy();
      try {
        fs.unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
