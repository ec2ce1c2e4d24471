from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
EVENT_FIELD_NUMBER: _ClassVar[int]
FRAME_TYPE_FIELD_NUMBER: _ClassVar[int]
event: _descriptor.FieldDescriptor
frame_type: _descriptor.FieldDescriptor

class EventOptions(_message.Message):
    __slots__ = ["ack", "correlation_id", "method", "type"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ack: bool
    correlation_id: str
    method: str
    type: str
    def __init__(self, type: _Optional[str] = ..., method: _Optional[str] = ..., correlation_id: _Optional[str] = ..., ack: bool = ...) -> None: ...
