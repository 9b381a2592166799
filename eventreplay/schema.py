"""The shared schema: the event envelope and the prototype's e-commerce event models.

The envelope (`event_id`, `event_type`, `timestamp`) is all the archive requires. The models of the
13 known types check the fields an event carries: a field that is present must have the right type,
but no field beyond the envelope is required, so the prototype's messages are accepted unchanged and
extra fields are kept. Types the schema does not know are valid too: an archive must not drop
tomorrow's events.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EVENT_CATEGORIES: dict[str, str] = {
    # event type -> routing key (the event's category, as the prototype routed them)
    "UserRegistered": "user-auth",
    "UserLoggedIn": "user-auth",
    "UserLoggedOut": "user-auth",
    "ProductViewed": "product-events",
    "ProductReviewed": "product-events",
    "ProductAddedToCart": "cart-events",
    "ProductRemovedFromCart": "cart-events",
    "ProductWishlistAdded": "wishlist-events",
    "ProductWishlistRemoved": "wishlist-events",
    "OrderPlaced": "order-events",
    "OrderShipped": "order-events",
    "OrderDelivered": "order-events",
    "PaymentProcessed": "payment-events",
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_CATEGORIES)
DEFAULT_ROUTING_KEY = "misc-events"


def routing_key_for(event_type: str) -> str:
    return EVENT_CATEGORIES.get(event_type, DEFAULT_ROUTING_KEY)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: object, *, what: str = "event_id") -> str:
    """The one spelling of a UUID (an event id, a job id): dedup and lookups must not depend on how
    a producer or a caller wrote it (case, braces, urn:uuid:). ValueError when it is no UUID."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # already spelled that way (every event the consumer parsed): no round trip
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a UUID") from None


def as_utc(moment: datetime) -> datetime:
    """A timestamp without offset is UTC (the prototype sent naive `utcnow()`).

    A moment near the ends of the calendar with an offset ("0001-01-01T00:00:00+01:00") has no UTC
    form: that is a ValueError ("timestamp out of range"), which pydantic and the forms report as
    a field error, never an OverflowError that escapes as a crash."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp out of range: its UTC time is outside years 1-9999") from None


class EventEnvelope(BaseModel):
    """What every archived message must carry."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: UUID
    event_type: str = Field(min_length=1, max_length=200)
    timestamp: datetime

    @field_validator("event_type")
    @classmethod
    def _printable(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable():
            raise ValueError("event_type must be printable text without surrounding spaces")
        return value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class _Event(EventEnvelope):
    pass


class UserRegistered(_Event):
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    country: str | None = None


class UserLoggedIn(_Event):
    user_id: str | None = None
    session_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


class UserLoggedOut(_Event):
    user_id: str | None = None
    session_id: str | None = None
    session_duration_seconds: int | None = Field(None, ge=0)


class ProductViewed(_Event):
    user_id: str | None = None
    product_id: str | None = None
    product_name: str | None = None
    category: str | None = None
    price: Decimal | None = Field(None, ge=0)


class ProductReviewed(_Event):
    user_id: str | None = None
    product_id: str | None = None
    rating: int | None = Field(None, ge=1, le=5)
    review_text: str | None = None


class ProductAddedToCart(_Event):
    user_id: str | None = None
    product_id: str | None = None
    quantity: int | None = Field(None, ge=1)
    price: Decimal | None = Field(None, ge=0)


class ProductRemovedFromCart(_Event):
    user_id: str | None = None
    product_id: str | None = None
    quantity: int | None = Field(None, ge=1)


class ProductWishlistAdded(_Event):
    user_id: str | None = None
    product_id: str | None = None


class ProductWishlistRemoved(_Event):
    user_id: str | None = None
    product_id: str | None = None


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    product_id: str
    quantity: int = Field(ge=1)
    price: Decimal = Field(ge=0)


class OrderPlaced(_Event):
    order_id: str | None = None
    user_id: str | None = None
    items: list[OrderItem] | None = None
    total_amount: Decimal | None = Field(None, ge=0)
    currency: str | None = None
    shipping_address: str | None = None


class PaymentProcessed(_Event):
    payment_id: str | None = None
    order_id: str | None = None
    user_id: str | None = None
    amount: Decimal | None = Field(None, ge=0)
    currency: str | None = None
    payment_method: str | None = None
    status: str | None = None


class OrderShipped(_Event):
    order_id: str | None = None
    user_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None


class OrderDelivered(_Event):
    order_id: str | None = None
    user_id: str | None = None
    delivered_at: datetime | None = None


EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    model.__name__: model
    for model in (
        UserRegistered, UserLoggedIn, UserLoggedOut, ProductViewed, ProductReviewed, ProductAddedToCart,
        ProductRemovedFromCart, ProductWishlistAdded, ProductWishlistRemoved, OrderPlaced,
        PaymentProcessed, OrderShipped, OrderDelivered,
    )
}
assert set(EVENT_MODELS) == set(EVENT_CATEGORIES)


class InvalidEvent(ValueError):
    """A message that cannot be archived; `reason` says why in one readable line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_id: str
    event_type: str
    timestamp: datetime  # aware, UTC
    payload: dict[str, Any]
    known_type: bool


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0][:300] if text else "") or type(error).__name__


def read_json(data: bytes | str):
    """JSON text read with a readable reason when it cannot be (ValueError): a message body, a
    payload match typed by an operator.

    orjson reads the usual text several times faster; whatever it refuses is read again by the
    standard library, so the result (NaN, integers beyond 64 bits, lone surrogates are accepted as
    before) and the reasons stay those of `json`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at char {error.pos})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to be read") from None
    except (ValueError, ArithmeticError) as error:
        if "digits" in str(error):  # Python's limit on converting long integers
            raise ValueError("not usable JSON: a number in it is too long (over 4300 digits)") from None
        raise ValueError(f"not usable JSON ({_first_line(error)})") from None


def read_json_or_none(data: bytes | str) -> Any:
    """The JSON value, or None for text that is not JSON (a payload match never matches it)."""
    try:
        return read_json(data)
    except ValueError:
        return None


def dump_json(value: Any) -> bytes:
    """JSON bytes (UTF-8, not ASCII-escaped; unknown types as their str), by orjson, or by json for
    what orjson refuses (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, default=str).encode()


def parse_event(body: bytes) -> ParsedEvent:
    """Validate a message body; raises InvalidEvent with the reason."""
    try:
        payload = read_json(body)
    except ValueError as error:
        raise InvalidEvent(f"body is {error}") from None
    if not isinstance(payload, dict):
        raise InvalidEvent(f"body is JSON {type(payload).__name__}, expected an object")
    model = EVENT_MODELS.get(payload.get("event_type")) if isinstance(payload.get("event_type"), str) else None
    kind = f"{payload.get('event_type')} " if model else ""
    try:
        event = (model or EventEnvelope).model_validate(payload)
    except ValidationError as error:
        raise InvalidEvent(f"invalid {kind}event: {_describe(error)}") from None
    except RecursionError:
        raise InvalidEvent(f"invalid {kind}event: nested too deeply to be validated") from None
    except (ValueError, ArithmeticError) as error:  # a validator's own failure outside pydantic's wrapping
        raise InvalidEvent(f"invalid {kind}event: {_first_line(error)}") from None
    return ParsedEvent(
        event_id=str(event.event_id),
        event_type=event.event_type,
        timestamp=event.timestamp,
        payload=payload,
        known_type=model is not None,
    )
