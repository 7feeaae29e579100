from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("payload", "delay_ms", "status_code", "status_message")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    delay_ms: int
    status_code: int
    status_message: str
    def __init__(self, payload: _Optional[bytes] = ..., delay_ms: _Optional[int] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("payload", "messages", "bytes")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    messages: int
    bytes: int
    def __init__(self, payload: _Optional[bytes] = ..., messages: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...
