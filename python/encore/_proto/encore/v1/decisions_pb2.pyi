from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    SHOWN: _ClassVar[Outcome]
    ACCEPTED: _ClassVar[Outcome]
    DECLINED: _ClassVar[Outcome]
    IGNORED: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
SHOWN: Outcome
ACCEPTED: Outcome
DECLINED: Outcome
IGNORED: Outcome

class DecideRequest(_message.Message):
    __slots__ = ("surface", "customer_id", "order", "slots", "candidate_offer_ids", "features", "request_id")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_OFFER_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    surface: str
    customer_id: str
    order: Order
    slots: int
    candidate_offer_ids: _containers.RepeatedScalarFieldContainer[str]
    features: _containers.ScalarMap[str, float]
    request_id: str
    def __init__(self, surface: _Optional[str] = ..., customer_id: _Optional[str] = ..., order: _Optional[_Union[Order, _Mapping]] = ..., slots: _Optional[int] = ..., candidate_offer_ids: _Optional[_Iterable[str]] = ..., features: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "total_cents", "currency", "items", "shipping_method", "channel", "device", "country", "is_gift")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_METHOD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    IS_GIFT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    total_cents: int
    currency: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    shipping_method: str
    channel: str
    device: str
    country: str
    is_gift: bool
    def __init__(self, order_id: _Optional[str] = ..., total_cents: _Optional[int] = ..., currency: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., shipping_method: _Optional[str] = ..., channel: _Optional[str] = ..., device: _Optional[str] = ..., country: _Optional[str] = ..., is_gift: _Optional[bool] = ...) -> None: ...

class LineItem(_message.Message):
    __slots__ = ("sku", "category", "price_cents", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    category: str
    price_cents: int
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., category: _Optional[str] = ..., price_cents: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision_id", "placements", "model_version", "holdout")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    model_version: str
    holdout: bool
    def __init__(self, decision_id: _Optional[str] = ..., placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., model_version: _Optional[str] = ..., holdout: _Optional[bool] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("offer_id", "slot", "propensity", "score", "expected_value")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    slot: int
    propensity: float
    score: float
    expected_value: float
    def __init__(self, offer_id: _Optional[str] = ..., slot: _Optional[int] = ..., propensity: _Optional[float] = ..., score: _Optional[float] = ..., expected_value: _Optional[float] = ...) -> None: ...

class OutcomeRequest(_message.Message):
    __slots__ = ("decision_id", "offer_id", "outcome", "revenue_cents")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REVENUE_CENTS_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    offer_id: str
    outcome: Outcome
    revenue_cents: int
    def __init__(self, decision_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., revenue_cents: _Optional[int] = ...) -> None: ...

class OutcomeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
