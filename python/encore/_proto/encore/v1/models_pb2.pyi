from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSnapshotRequest(_message.Message):
    __slots__ = ("version", "offset")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    version: str
    offset: int
    def __init__(self, version: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class SnapshotPart(_message.Message):
    __slots__ = ("version", "offset", "data", "total_bytes", "sha256")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    version: str
    offset: int
    data: bytes
    total_bytes: int
    sha256: str
    def __init__(self, version: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data", "activate")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    activate: bool
    def __init__(self, data: _Optional[bytes] = ..., activate: _Optional[bool] = ...) -> None: ...

class PushSnapshotResponse(_message.Message):
    __slots__ = ("model", "activated")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    activated: bool
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., activated: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("version", "created_at_millis", "sha256", "size_bytes", "active", "exploration", "features", "offers", "signed", "loaded_at_millis", "signer")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MILLIS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_MILLIS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    version: str
    created_at_millis: int
    sha256: str
    size_bytes: int
    active: bool
    exploration: str
    features: int
    offers: int
    signed: bool
    loaded_at_millis: int
    signer: str
    def __init__(self, version: _Optional[str] = ..., created_at_millis: _Optional[int] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., active: _Optional[bool] = ..., exploration: _Optional[str] = ..., features: _Optional[int] = ..., offers: _Optional[int] = ..., signed: _Optional[bool] = ..., loaded_at_millis: _Optional[int] = ..., signer: _Optional[str] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("version", "force")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    force: bool
    def __init__(self, version: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "active_version")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    active_version: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., active_version: _Optional[str] = ...) -> None: ...
