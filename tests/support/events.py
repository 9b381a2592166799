"""Test data: archived events (`NewEvent`) as the consumer would store them, built one way for every
test. T0 is the suite's one reference moment; events without a timestamp happen at T0."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from eventreplay.broker import event_properties, properties_to_dict
from eventreplay.schema import routing_key_for
from eventreplay.store import NewEvent

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def prototype_body(event_id: str, event_type: str, timestamp: datetime, fields: Mapping[str, Any]) -> bytes:
    """The body as the prototype sent it: `json.dumps` of the envelope and the fields, with a naive
    `utcnow().isoformat()` timestamp (what the archive must keep accepting)."""
    payload = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": timestamp.astimezone(timezone.utc).replace(tzinfo=None).isoformat(),
        **fields,
    }
    return json.dumps(payload).encode()


def new_event(
    event_type: str = "OrderPlaced",
    *,
    timestamp: datetime | None = None,
    event_id: str | None = None,
    body: bytes | None = None,
    routing_key: str | None = None,
    exchange: str = "ecommerce-exchange",
    properties: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
    **fields: Any,
) -> NewEvent:
    """One event to append to a store. The keyword arguments not named here are payload fields
    (`new_event("OrderPlaced", order_id="o1")`); the rest default to what the consumer stores for a
    message our publishers sent: the prototype's body, the category's routing key, the AMQP
    properties of eventreplay.broker.event_properties, received 5 ms after its timestamp."""
    event_id = event_id or str(uuid.uuid4())
    timestamp = timestamp or T0
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    if properties is None:
        properties = properties_to_dict(
            event_properties(event_id=event_id, event_type=event_type, timestamp=timestamp.timestamp()))
    return NewEvent(
        event_id=event_id,
        event_type=event_type,
        timestamp=timestamp,
        body=body if body is not None else prototype_body(event_id, event_type, timestamp, fields),
        routing_key=routing_key if routing_key is not None else routing_key_for(event_type),
        exchange=exchange,
        received_at=received_at or timestamp + timedelta(milliseconds=5),
        properties=dict(properties),
    )


def series(count: int, event_type: str = "OrderPlaced", *, start: datetime = T0, step: timedelta = timedelta(seconds=1),
           **fields: Any) -> list[NewEvent]:
    """`count` events one `step` apart from `start`, the i-th with the payload field "n": i."""
    return [new_event(event_type, timestamp=start + i * step, **{"n": i, **fields}) for i in range(count)]
