"""The gRPC transport: a grpc.aio server implementing AgentServiceV2."""

import logging

import grpc

from .session import EVENT_CASES, ProtocolError, Session, answer, now_ms
from .stubs import agent_pb2, agent_pb2_grpc

log = logging.getLogger("pyagent.grpc")

DEFAULT_SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentServiceV2"].full_name

# How long close() lets streams end on their own before cancelling them.
_STOP_GRACE_S = 0.5


class _Servicer(agent_pb2_grpc.AgentServiceV2Servicer):
    """AgentServiceV2 on a Session per ProcessStream."""

    def __init__(self, settings, policy):
        self.settings = settings
        self.policy = policy

    async def ProcessStream(self, request_iterator, context):
        session = Session(self.settings, self.policy, "grpc")

        async def recv():
            msg = await context.read()
            return None if msg is grpc.aio.EOF else msg

        async def send(msg):
            await context.write(msg)

        try:
            await session.run(recv, send)
        except ProtocolError as exc:
            log.warning("grpc: closing stream: %s", exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if session.unknown_messages:
            log.info("grpc: skipped %d message(s) of unknown kind", session.unknown_messages)

    async def ProcessEvent(self, request, context):
        case = request.WhichOneof("message")
        if case in EVENT_CASES:
            resp = await answer(self.policy, case, request)
            return agent_pb2.AgentToProxy(event_id=request.event_id, response=resp)
        if case == "ping":
            return agent_pb2.AgentToProxy(
                event_id=request.event_id,
                pong=agent_pb2.Pong(
                    sequence=request.ping.sequence,
                    ping_timestamp_ms=request.ping.timestamp_ms,
                    timestamp_ms=now_ms(),
                ),
            )
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"ProcessEvent takes one event, got {case or 'nothing'}"
        )

    async def ControlStream(self, request_iterator, context):
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "ControlStream is not implemented: control messages travel on ProcessStream",
        )


class GRPCServer:
    """Serves AgentServiceV2 (under service_name too, if different) with
    grpc.aio. Runs on one event loop; close() stops it and waits."""

    def __init__(self, settings, policy, service_name=DEFAULT_SERVICE_NAME):
        self.settings = settings
        self.policy = policy
        self.service_name = service_name
        self.port = None
        self._server = None

    async def start(self, address):
        size = self.settings.max_frame_size
        server = grpc.aio.server(
            options=[
                # Fail loudly on a port that is already taken.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
            ]
        )
        servicer = _Servicer(self.settings, self.policy)
        agent_pb2_grpc.add_AgentServiceV2Servicer_to_server(servicer, server)
        if self.service_name != DEFAULT_SERVICE_NAME:
            server.add_generic_rpc_handlers((_alias(self.service_name, servicer),))
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        self.port = port
        log.info("listening on grpc://%s (port %d, service %s)", address, port, self.service_name)

    async def close(self):
        if self._server is None:
            return
        await self._server.stop(_STOP_GRACE_S)
        self._server = None


def _alias(service_name, servicer):
    """The servicer's streams under another service name (for proxies that
    call e.g. zentinel.agent.v2.AgentServiceV2)."""
    des = agent_pb2.ProxyToAgent.FromString
    ser = agent_pb2.AgentToProxy.SerializeToString
    return grpc.method_handlers_generic_handler(
        service_name,
        {
            "ProcessStream": grpc.stream_stream_rpc_method_handler(
                servicer.ProcessStream, request_deserializer=des, response_serializer=ser
            ),
            "ProcessEvent": grpc.unary_unary_rpc_method_handler(
                servicer.ProcessEvent, request_deserializer=des, response_serializer=ser
            ),
        },
    )


__all__ = ["GRPCServer", "DEFAULT_SERVICE_NAME"]
