from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class OfferRecord(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class CustomerRecord(_message.Message):
    __slots__ = ("customer_id", "segments", "features")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    segments: _containers.RepeatedScalarFieldContainer[str]
    features: _containers.ScalarMap[str, float]
    def __init__(self, customer_id: _Optional[str] = ..., segments: _Optional[_Iterable[str]] = ..., features: _Optional[_Mapping[str, float]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "total")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    total: int
    def __init__(self, upserted: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...
