"""What a replayed message looks like on the wire (docs/api.md "Replayed messages").

The original body, byte for byte, and the original AMQP properties, persistent, plus headers that
say it is a replay: `x-replay-id` (the archive consumer skips such messages, and a downstream
consumer can drop repeats by `message_id` + `x-replay-id`), `x-replayed-at`,
`x-original-routing-key`, `x-original-exchange`. `message_id` is always the event_id, so that
the events a resume or a reconnect sends again can be recognised.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pika

from eventreplay.store.base import StoredEvent

REPLAY_ID_HEADER = "x-replay-id"


def replay_properties(event: StoredEvent, *, replay_id: str, replayed_at: datetime | None = None) -> pika.BasicProperties:
    # user_id is left out: RabbitMQ refuses a user_id that is not the publishing connection's own.
    fields = {k: v for k, v in event.properties.items() if k not in ("headers", "user_id", "message_id")}
    fields.setdefault("type", event.event_type)
    fields.setdefault("content_type", "application/json")
    fields.setdefault("timestamp", int(event.timestamp.timestamp()))
    fields["delivery_mode"] = pika.DeliveryMode.Persistent.value
    headers = dict(event.properties.get("headers") or {})
    headers[REPLAY_ID_HEADER] = replay_id
    headers["x-replayed-at"] = (replayed_at or datetime.now(timezone.utc)).isoformat()
    headers["x-original-routing-key"] = event.routing_key
    headers["x-original-exchange"] = event.exchange
    if event.properties.get("user_id"):
        headers["x-original-user-id"] = event.properties["user_id"]
    original_id = event.properties.get("message_id")
    if original_id and original_id != event.event_id:
        headers["x-original-message-id"] = original_id
    return pika.BasicProperties(headers=headers, message_id=event.event_id, **fields)
