"""Frames of the Unix-socket transport: [u32 BE length][u8 type][envelope].

The length counts the type byte and the payload. The type byte names the oneof
case of the envelope; the table is read from the schema itself, the custom
option (sentinel.agent.v2.frame_type) on every case of ProxyToAgent.message and
AgentToProxy.message, so a new case in the proto needs no change here.
"""

import asyncio
import struct

from google.protobuf.message import DecodeError

from .stubs import agent_pb2, options_pb2

DEFAULT_MAX_FRAME = 16 << 20

_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """A frame that leaves the stream unusable: the connection must close."""


class FrameTable:
    """Maps one envelope's oneof cases to frame type bytes and back.

    Immutable after construction; safe to share between connections.
    """

    def __init__(self, envelope):
        self.envelope = envelope
        self.by_type = {}
        self.by_case = {}
        oneof = envelope.DESCRIPTOR.oneofs_by_name["message"]
        for field in oneof.fields:
            opts = field.GetOptions()
            if not opts.HasExtension(options_pb2.frame_type):
                raise RuntimeError(f"{field.full_name} has no frame_type option")
            t = opts.Extensions[options_pb2.frame_type]
            if not 0 < t < 256:
                raise RuntimeError(f"{field.full_name}: frame_type {t} is not one byte")
            if t in self.by_type:
                raise RuntimeError(
                    f"{field.full_name}: frame_type {t:#04x} already used by {self.by_type[t]}"
                )
            self.by_type[t] = field.name
            self.by_case[field.name] = t

    def encode(self, msg, max_size=DEFAULT_MAX_FRAME):
        """Returns msg as one frame, length prefix included."""
        case = msg.WhichOneof("message")
        if case is None:
            raise ValueError(f"{type(msg).__name__} has no message case set")
        payload = msg.SerializeToString()
        n = len(payload) + 1
        if n > max_size:
            raise ValueError(f"{case} frame of {n} bytes exceeds the {max_size}-byte limit")
        return _LENGTH.pack(n) + bytes((self.by_case[case],)) + payload

    def decode(self, frame_type, payload):
        """Decodes a frame's payload. Returns None for a type this table
        does not know (skip it); raises FrameError for a malformed payload or
        one whose case does not match the type byte."""
        case = self.by_type.get(frame_type)
        if case is None:
            return None
        msg = self.envelope()
        try:
            msg.ParseFromString(payload)
        except DecodeError as exc:
            raise FrameError(f"malformed {case} frame: {exc}") from exc
        got = msg.WhichOneof("message")
        if got != case:
            raise FrameError(f"frame type {frame_type:#04x} ({case}) carries {got or 'no message'}")
        return msg


PROXY_TO_AGENT = FrameTable(agent_pb2.ProxyToAgent)
AGENT_TO_PROXY = FrameTable(agent_pb2.AgentToProxy)


async def read_frame(reader, max_size=DEFAULT_MAX_FRAME):
    """Reads one frame from an asyncio StreamReader.

    Returns (type, payload), or None at a clean end of stream (between
    frames). Raises FrameError for a zero-length, oversize or truncated frame.
    """
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("truncated frame header") from exc
    (n,) = _LENGTH.unpack(head)
    if n == 0:
        raise FrameError("zero-length frame")
    if n > max_size:
        raise FrameError(f"frame of {n} bytes exceeds the {max_size}-byte limit")
    try:
        body = await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(f"truncated frame: {len(exc.partial)} of {n} bytes") from exc
    return body[0], body[1:]
