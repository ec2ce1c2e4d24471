"""The Unix-socket transport: asyncio streams and the frame codec."""

import asyncio
import contextlib
import logging
import os
import stat

from .frames import AGENT_TO_PROXY, PROXY_TO_AGENT, FrameError, read_frame
from .session import ProtocolError, Session

log = logging.getLogger("pyagent.uds")


class UnixServer:
    """Serves sessions on a Unix socket. Runs on one event loop.

    close() stops listening, cancels every connection and waits for them.
    """

    def __init__(self, settings, policy):
        self.settings = settings
        self.policy = policy
        self.path = None
        self._server = None
        self._conns = set()

    async def start(self, path):
        # A socket left behind by a previous run would make bind fail.
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        self._server = await asyncio.start_unix_server(self._serve, path=path)
        self.path = path
        log.info("listening on unix://%s", path)

    async def close(self):
        if self._server is None:
            return
        self._server.close()
        for t in list(self._conns):
            t.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._conns.add(task)
        session = Session(self.settings, self.policy, "uds")
        max_size = self.settings.max_frame_size
        unknown = 0

        async def recv():
            nonlocal unknown
            while True:
                frame = await read_frame(reader, max_size)
                if frame is None:
                    return None
                frame_type, payload = frame
                msg = PROXY_TO_AGENT.decode(frame_type, payload)
                if msg is not None:
                    return msg
                unknown += 1
                log.debug("skipping frame of unknown type %#04x (%d bytes)", frame_type, len(payload))

        async def send(msg):
            writer.write(AGENT_TO_PROXY.encode(msg, max_size))
            await writer.drain()

        try:
            await session.run(recv, send)
        except (FrameError, ProtocolError) as exc:
            log.warning("uds: closing connection: %s", exc)
        except (ConnectionError, OSError) as exc:
            log.info("uds: connection lost: %s", exc)
        except Exception:
            log.exception("uds: connection failed")
        finally:
            if unknown:
                log.info("uds: skipped %d frame(s) of unknown type", unknown)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._conns.discard(task)
