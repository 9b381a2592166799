"""Small builders of test data shared by the test modules."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from eventreplay.schema import routing_key_for
from eventreplay.store import NewEvent

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def body_for(event_id: str, event_type: str, timestamp: datetime, payload_extra: Mapping[str, Any] | None) -> bytes:
    """The body as the prototype sent it: naive `utcnow().isoformat()` timestamps."""
    payload = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": timestamp.astimezone(timezone.utc).replace(tzinfo=None).isoformat(),
        **(payload_extra or {}),
    }
    return json.dumps(payload).encode()


def new_event(
    event_type: str = "OrderPlaced",
    *,
    timestamp: datetime | None = None,
    payload_extra: Mapping[str, Any] | None = None,
    routing_key: str | None = None,
    event_id: str | None = None,
    body: bytes | None = None,
    exchange: str = "ecommerce-exchange",
    properties: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
) -> NewEvent:
    event_id = event_id or str(uuid.uuid4())
    timestamp = timestamp or T0
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return NewEvent(
        event_id=event_id,
        event_type=event_type,
        timestamp=timestamp,
        body=body if body is not None else body_for(event_id, event_type, timestamp, payload_extra),
        routing_key=routing_key if routing_key is not None else routing_key_for(event_type),
        exchange=exchange,
        received_at=received_at or timestamp + timedelta(milliseconds=5),
        properties=dict(properties) if properties is not None else {
            "message_id": event_id, "type": event_type, "content_type": "application/json", "delivery_mode": 2,
        },
    )


def series(count: int, event_type: str = "OrderPlaced", *, start: datetime = T0, step: timedelta = timedelta(seconds=1),
           **kwargs) -> list[NewEvent]:
    """`count` events one `step` apart, each with `payload_extra` {"n": i}."""
    extra = dict(kwargs.pop("payload_extra", None) or {})
    return [
        new_event(event_type, timestamp=start + i * step, payload_extra={"n": i, **extra}, **kwargs)
        for i in range(count)
    ]
