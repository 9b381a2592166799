"""AMQP properties on the wire (the contract in README, "Messages on the wire").

- What our publishers set on every event: `event_properties`.
- Their JSON-able view, kept in the store's metadata: `properties_to_dict` / `properties_from_dict`.
- What a message we publish again carries (a replay, a dead letter): `republished_properties`, the
  one home of the `x-original-*` headers and of the user_id rule. RabbitMQ refuses a `user_id` that
  is not the publishing connection's own user, so it travels as the header `x-original-user-id`.
- The replay marker: `x-replay-id`, which the archive consumer skips (`is_replay`).
"""
from __future__ import annotations

from typing import Any, Mapping

import pika
from pika.spec import BasicProperties

REPLAY_ID_HEADER = "x-replay-id"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_USER_ID_HEADER = "x-original-user-id"

_FIELDS = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
    "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
)


def event_properties(*, event_id: str, event_type: str, timestamp: float | None,
                     headers: dict[str, Any] | None = None, content_type: str = "application/json") -> BasicProperties:
    """The AMQP properties our publishers set on every event."""
    return BasicProperties(
        message_id=event_id,
        type=event_type,
        timestamp=int(timestamp) if timestamp is not None else None,
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=content_type,
        headers=headers,
    )


def properties_to_dict(properties: BasicProperties) -> dict[str, Any]:
    """JSON-able view of AMQP properties (for the store's metadata)."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(properties, name, None)
        if value is not None:
            out[name] = _jsonable(value)
    return out


def properties_from_dict(data: Mapping[str, Any]) -> BasicProperties:
    """AMQP properties from their stored view."""
    return BasicProperties(**{k: v for k, v in data.items() if k in _FIELDS})


def republished_properties(original: Mapping[str, Any], *, routing_key: str, exchange: str,
                           headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields of a message published again (the stored view of its original properties, as
    a dict for BasicProperties): persistent whatever the original said, `user_id` moved to a
    header, where it came from in `x-original-*` headers, plus `headers`."""
    fields = {k: v for k, v in original.items() if k in _FIELDS and k not in ("headers", "user_id")}
    fields["delivery_mode"] = pika.DeliveryMode.Persistent.value
    merged = dict(original.get("headers") or {})
    merged[ORIGINAL_ROUTING_KEY_HEADER] = routing_key
    merged[ORIGINAL_EXCHANGE_HEADER] = exchange
    if original.get("user_id"):
        merged[ORIGINAL_USER_ID_HEADER] = original["user_id"]
    merged.update(headers or {})
    fields["headers"] = merged
    return fields


def is_replay(properties: BasicProperties) -> bool:
    """A message the Replay API sent: its event is archived already."""
    return bool(properties.headers) and REPLAY_ID_HEADER in properties.headers


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Decimal, datetime in headers
