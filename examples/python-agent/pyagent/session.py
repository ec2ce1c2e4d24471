"""The protocol on one connection, whatever the transport.

A transport gives a Session two coroutines: recv() returning the next
ProxyToAgent (None at end of stream) and send(msg) writing one AgentToProxy.
The session does the rest: handshake and version negotiation, health reports,
concurrent handling of events (one lane per correlation id, so one request's
events are answered in order while different requests run concurrently),
cancel, ping, flow control, and closing on protocol errors.
"""

import asyncio
import collections
import logging
import time

from .stubs import agent_pb2

PROTOCOL_VERSION = 2
ENCODING = "protobuf"
DEFAULT_HEALTH_INTERVAL_MS = 10_000

# Outgoing messages queued beyond this make the reader wait for the writer.
_OUT_HIGH_WATER = 1024
# How long a closing session waits for its queued messages to be written.
_FLUSH_TIMEOUT_S = 1.0
# gRPC status codes used in AgentResponse.error.
_CODE_RESOURCE_EXHAUSTED = 8
_CODE_INTERNAL = 13
# Bytes a response envelope may need beyond AgentResponse itself (oneof tag
# and length, event_id, frame type byte); used to check the frame limit.
_ENVELOPE_OVERHEAD = 32

# Oneof cases of ProxyToAgent that are events, with their EventType.
EVENT_CASES = {
    "request_headers": agent_pb2.EVENT_TYPE_REQUEST_HEADERS,
    "request_body_chunk": agent_pb2.EVENT_TYPE_REQUEST_BODY_CHUNK,
    "response_headers": agent_pb2.EVENT_TYPE_RESPONSE_HEADERS,
    "response_body_chunk": agent_pb2.EVENT_TYPE_RESPONSE_BODY_CHUNK,
    "request_complete": agent_pb2.EVENT_TYPE_REQUEST_COMPLETE,
    "websocket_frame": agent_pb2.EVENT_TYPE_WEBSOCKET_FRAME,
    "guardrail": agent_pb2.EVENT_TYPE_GUARDRAIL_INSPECT,
    "configure": agent_pb2.EVENT_TYPE_CONFIGURE,
}

log = logging.getLogger("pyagent.session")


class ProtocolError(Exception):
    """The proxy broke the protocol: the connection must close."""


class Settings:
    """What an agent declares and how it runs; shared by all connections."""

    def __init__(
        self,
        agent_id="python-agent",
        name="agentwire python example",
        version="0.1.0",
        max_concurrency=64,
        health_interval_ms=DEFAULT_HEALTH_INTERVAL_MS,
        max_frame_size=16 << 20,
        max_queue=1024,
        handshake_timeout_s=10.0,
    ):
        self.agent_id = agent_id
        self.name = name
        self.version = version
        self.max_concurrency = max_concurrency
        self.health_interval_ms = health_interval_ms
        self.max_frame_size = max_frame_size
        # Events accepted beyond max_concurrency (a proxy that ignores the
        # pause); more are answered at once with RESOURCE_EXHAUSTED.
        self.max_queue = max_queue
        self.handshake_timeout_s = handshake_timeout_s


def correlation_id(case, msg):
    """The correlation id of an event envelope ("" for configure)."""
    if case == "request_headers":
        return msg.request_headers.metadata.correlation_id
    if case == "configure":
        return ""
    return getattr(msg, case).correlation_id


def now_ms():
    return int(time.time() * 1000)


async def answer(policy, case, msg):
    """Runs the policy on one event and returns its AgentResponse, turning a
    handler failure into AgentResponse.error (code INTERNAL, no decision)."""
    corr = correlation_id(case, msg)
    start = time.monotonic()
    try:
        resp = await policy.decide(case, msg)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a handler failure is answered, not fatal
        log.warning("event %d (%s, correlation_id=%r) failed: %s", msg.event_id, case, corr, exc)
        resp = agent_pb2.AgentResponse(error=agent_pb2.Status(code=_CODE_INTERNAL, message=str(exc)))
    resp.correlation_id = corr
    resp.processing_time_ms = int((time.monotonic() - start) * 1000)
    return resp


class _Lane:
    """The queued events of one correlation id and the task working them off."""

    __slots__ = ("corr", "queue", "task")

    def __init__(self, corr):
        self.corr = corr
        self.queue = collections.deque()
        self.task = None


class Session:
    """One connection's protocol state. Runs on one event loop; not thread-safe.

    run() owns every task it starts (reader, writer, lanes, health) and
    cancels and awaits them all before it returns.
    """

    def __init__(self, settings, policy, transport):
        self.settings = settings
        self.policy = policy
        self.transport = transport
        self.unknown_messages = 0
        self._out = asyncio.Queue()
        self._out_room = asyncio.Event()
        self._out_room.set()
        self._lanes = {}
        self._sem = asyncio.Semaphore(max(1, settings.max_concurrency))
        self._in_flight = 0
        self._running = 0
        self._paused = False
        self._closing = False
        self._draining = False
        self._interval_ms = settings.health_interval_ms
        self._processed = 0
        self._rejected = 0
        self._latencies = collections.deque(maxlen=1024)
        self._health_task = None

    @property
    def in_flight(self):
        """Events received and not yet answered or cancelled."""
        return self._in_flight

    async def run(self, recv, send):
        """Serves the connection until the proxy closes it, it breaks, or the
        session is cancelled. Raises ProtocolError (or the transport's own
        errors) when the connection must close because of bad input."""
        writer = asyncio.create_task(self._write_loop(send), name="pyagent-writer")
        reader = asyncio.create_task(self._read_loop(recv), name="pyagent-reader")
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer.done() and not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._stop_work()
            # Let the writer flush what is queued (a handshake rejection must
            # reach the proxy before the connection closes), then stop it.
            self._out.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(writer), _FLUSH_TIMEOUT_S)
            except Exception:
                pass  # timed out, or the writer failed (raised below)
            finally:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        # Surface the reader's failure (protocol error, bad frame).
        if not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            raise writer.exception()

    # --- outgoing ---------------------------------------------------------

    def _post(self, msg):
        """Queues one message for the writer; never blocks, keeps order."""
        self._out.put_nowait(msg)
        if self._out.qsize() >= _OUT_HIGH_WATER:
            self._out_room.clear()

    def _post_response(self, event_id, resp):
        """Queues the response to one event, replaced by a RESOURCE_EXHAUSTED
        error if it would exceed the frame limit."""
        limit = self.settings.max_frame_size
        if resp.ByteSize() + _ENVELOPE_OVERHEAD > limit:
            resp = agent_pb2.AgentResponse(
                correlation_id=resp.correlation_id,
                error=agent_pb2.Status(
                    code=_CODE_RESOURCE_EXHAUSTED,
                    message=f"response of {resp.ByteSize()} bytes exceeds the {limit}-byte frame limit",
                ),
            )
        self._post(agent_pb2.AgentToProxy(event_id=event_id, response=resp))

    async def _write_loop(self, send):
        while True:
            msg = await self._out.get()
            if self._out.qsize() < _OUT_HIGH_WATER:
                self._out_room.set()
            if msg is None:
                return
            await send(msg)

    # --- incoming ---------------------------------------------------------

    async def _read_loop(self, recv):
        try:
            first = await asyncio.wait_for(recv(), self.settings.handshake_timeout_s)
        except asyncio.TimeoutError:
            raise ProtocolError(
                f"no handshake within {self.settings.handshake_timeout_s:g} s"
            ) from None
        if first is None:
            return
        case = first.WhichOneof("message")
        if case != "handshake":
            raise ProtocolError(f"first message must be a handshake, got {case or 'an unknown message'}")
        if not self._handshake(first):
            return
        self._post(self._health())
        self._health_task = asyncio.create_task(self._health_loop(), name="pyagent-health")
        while True:
            await self._out_room.wait()
            msg = await recv()
            if msg is None:
                return
            self._dispatch(msg)

    def _handshake(self, msg):
        hs = msg.handshake
        versions = list(hs.supported_versions)
        encodings = list(hs.supported_encodings)
        error = None
        if PROTOCOL_VERSION not in versions:
            error = f"unsupported protocol versions {versions}: this agent speaks version {PROTOCOL_VERSION}"
        elif encodings and ENCODING not in encodings:
            error = f"unsupported encodings {encodings}: this agent speaks {ENCODING}"
        if error is not None:
            log.warning("rejecting handshake from proxy %r: %s", hs.proxy_id, error)
            self._post(
                agent_pb2.AgentToProxy(
                    event_id=msg.event_id,
                    handshake=agent_pb2.HandshakeResponse(
                        protocol_version=PROTOCOL_VERSION, success=False, error=error
                    ),
                )
            )
            return False
        if hs.health_report_interval_ms:
            self._interval_ms = hs.health_report_interval_ms
        log.info(
            "%s: handshake from proxy %r %s, health every %d ms",
            self.transport,
            hs.proxy_id,
            hs.proxy_version,
            self._interval_ms,
        )
        self._post(
            agent_pb2.AgentToProxy(
                event_id=msg.event_id,
                handshake=agent_pb2.HandshakeResponse(
                    protocol_version=PROTOCOL_VERSION,
                    success=True,
                    encoding=ENCODING,
                    capabilities=self._capabilities(),
                ),
            )
        )
        return True

    def _capabilities(self):
        s = self.settings
        return agent_pb2.AgentCapabilities(
            protocol_version=PROTOCOL_VERSION,
            agent_id=s.agent_id,
            name=s.name,
            version=s.version,
            supported_events=list(EVENT_CASES.values()),
            features=agent_pb2.AgentFeatures(
                streaming_body=True,
                websocket=True,
                guardrails=True,
                concurrent_requests=s.max_concurrency,
                cancellation=True,
                flow_control=True,
                health_reporting=True,
                echoes_event_id=True,
            ),
            limits=agent_pb2.AgentLimits(
                max_body_size=s.max_frame_size,
                max_concurrency=s.max_concurrency,
            ),
            health_config=agent_pb2.HealthConfig(
                report_interval_ms=self._interval_ms, include_load_metrics=True
            ),
        )

    def _dispatch(self, msg):
        case = msg.WhichOneof("message")
        if case in EVENT_CASES:
            self._enqueue(case, msg)
        elif case == "cancel":
            self._cancel(msg.cancel.correlation_id, msg.cancel.reason)
        elif case == "ping":
            self._post(
                agent_pb2.AgentToProxy(
                    event_id=msg.event_id,
                    pong=agent_pb2.Pong(
                        sequence=msg.ping.sequence,
                        ping_timestamp_ms=msg.ping.timestamp_ms,
                        timestamp_ms=now_ms(),
                    ),
                )
            )
        elif case == "handshake":
            raise ProtocolError("second handshake on the connection")
        elif case == "drain":
            log.info("%s: proxy drains this agent (reason %d)", self.transport, msg.drain.reason)
            self._draining = True
            self._post(self._health())
        elif case == "shutdown":
            log.info("%s: proxy shuts down (reason %d)", self.transport, msg.shutdown.reason)
        elif case == "registration_response":
            raise ProtocolError("registration_response on a connection the agent did not dial")
        elif case in ("pong", "config_response"):
            log.debug("%s: ignoring %s", self.transport, case)
        else:
            # A case newer than these stubs (gRPC has no frame type to skip by).
            self.unknown_messages += 1
            log.debug("%s: skipping unknown message", self.transport)

    # --- events -----------------------------------------------------------

    def _enqueue(self, case, msg):
        corr = correlation_id(case, msg)
        s = self.settings
        if self._in_flight >= s.max_concurrency + s.max_queue:
            self._rejected += 1
            self._post_response(
                msg.event_id,
                agent_pb2.AgentResponse(
                    correlation_id=corr,
                    error=agent_pb2.Status(
                        code=_CODE_RESOURCE_EXHAUSTED,
                        message=f"{self._in_flight} events in flight: the agent asked the proxy to pause",
                    ),
                ),
            )
            return
        self._in_flight += 1
        if not self._paused and self._in_flight >= s.max_concurrency:
            self._paused = True
            self._post(self._flow(agent_pb2.FLOW_ACTION_PAUSE))
        lane = self._lanes.get(corr)
        if lane is None:
            lane = _Lane(corr)
            lane.queue.append((case, msg))
            self._lanes[corr] = lane
            lane.task = asyncio.create_task(self._lane_loop(lane))
            lane.task.add_done_callback(lambda _, lane=lane: self._lane_done(lane))
        else:
            lane.queue.append((case, msg))

    def _finished(self, n):
        self._in_flight -= n
        if self._paused and not self._closing and self._in_flight <= self.settings.max_concurrency * 3 // 4:
            self._paused = False
            self._post(self._flow(agent_pb2.FLOW_ACTION_RESUME))

    async def _lane_loop(self, lane):
        while lane.queue:
            case, msg = lane.queue[0]
            async with self._sem:
                self._running += 1
                try:
                    start = time.monotonic()
                    resp = await answer(self.policy, case, msg)
                finally:
                    self._running -= 1
            self._latencies.append((time.monotonic() - start) * 1000)
            self._processed += 1
            self._post_response(msg.event_id, resp)
            lane.queue.popleft()
            self._finished(1)
        # Empty: retire the lane before giving up control, so the next event
        # of this correlation id starts a new one.
        if self._lanes.get(lane.corr) is lane:
            del self._lanes[lane.corr]

    def _lane_done(self, lane):
        """Runs when a lane's task has ended, however it ended (even if it
        was cancelled before it started): the events it did not answer stop
        counting as in flight only now, so health reports tell the truth."""
        if self._lanes.get(lane.corr) is lane:
            del self._lanes[lane.corr]
        if lane.queue:
            n = len(lane.queue)
            lane.queue.clear()
            self._finished(n)

    def _cancel(self, corr, reason):
        lanes = list(self._lanes.values()) if corr == "" else [self._lanes.get(corr)]
        for lane in lanes:
            if lane is None:
                continue
            log.debug(
                "%s: cancel correlation_id=%r (reason %d): dropping %d event(s)",
                self.transport,
                lane.corr,
                reason,
                len(lane.queue),
            )
            # A later event of this request starts a new lane; _lane_done
            # accounts for the dropped events once the task has stopped.
            del self._lanes[lane.corr]
            lane.task.cancel()

    async def _stop_work(self):
        self._closing = True
        tasks = [lane.task for lane in self._lanes.values()]
        self._lanes.clear()
        if self._health_task is not None:
            tasks.append(self._health_task)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- health and flow control -------------------------------------------

    def _flow(self, action):
        return agent_pb2.AgentToProxy(
            flow_control=agent_pb2.FlowControlSignal(action=action, timestamp_ms=now_ms())
        )

    async def _health_loop(self):
        while True:
            await asyncio.sleep(self._interval_ms / 1000.0)
            self._post(self._health())

    def _health(self):
        lat = sorted(self._latencies)

        def pct(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0

        state = agent_pb2.HEALTH_STATE_DRAINING if self._draining else agent_pb2.HEALTH_STATE_HEALTHY
        return agent_pb2.AgentToProxy(
            health=agent_pb2.HealthStatus(
                agent_id=self.settings.agent_id,
                state=state,
                load=agent_pb2.LoadMetrics(
                    in_flight=self._in_flight,
                    queue_depth=max(0, self._in_flight - self._running),
                    avg_latency_ms=(sum(lat) / len(lat)) if lat else 0.0,
                    p50_latency_ms=pct(0.50),
                    p95_latency_ms=pct(0.95),
                    p99_latency_ms=pct(0.99),
                    requests_processed=self._processed,
                    requests_rejected=self._rejected,
                ),
                timestamp_ms=now_ms(),
                timeout_multiplier=1.0,
                recoverable=True,
            )
        )
