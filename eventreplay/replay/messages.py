"""What a replayed message looks like on the wire (docs/api.md "Replayed messages").

The original body, byte for byte, and the original AMQP properties as the broker's republishing
rule keeps them (eventreplay/broker/properties.py: persistent, `x-original-*`), plus
`x-replay-id` (the archive consumer skips such messages, and a downstream consumer can drop repeats
by `message_id` + `x-replay-id`) and `x-replayed-at`. `message_id` is always the event_id, so that
the events a resume or a reconnect sends again can be recognised.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from pika.spec import BasicProperties

from eventreplay.broker.properties import REPLAY_ID_HEADER, republished_properties
from eventreplay.store.base import StoredEvent

ORIGINAL_MESSAGE_ID_HEADER = "x-original-message-id"


def replay_properties(event: StoredEvent, *, replay_id: str, replayed_at: str | None = None) -> BasicProperties:
    """`replayed_at`: ISO 8601, now by default (a caller publishing many per millisecond passes the
    same string)."""
    headers = {REPLAY_ID_HEADER: replay_id,
               "x-replayed-at": replayed_at or datetime.now(timezone.utc).isoformat()}
    original_id = event.properties.get("message_id")
    if original_id and original_id != event.event_id:
        headers[ORIGINAL_MESSAGE_ID_HEADER] = original_id
    fields = republished_properties(event.properties, routing_key=event.routing_key, exchange=event.exchange,
                                    headers=headers)
    fields["message_id"] = event.event_id
    fields.setdefault("type", event.event_type)
    fields.setdefault("content_type", "application/json")
    fields.setdefault("timestamp", int(event.timestamp.timestamp()))
    return BasicProperties(**fields)

class MillisecondClock:
    """Now as ISO 8601 text for `x-replayed-at`, made again only when a millisecond has passed: a
    replay stamps thousands of messages a second, and formatting the time for each would cost more
    than the stamp is worth."""

    def __init__(self):
        self._text, self._made = "", -1.0

    def now(self) -> str:
        moment = time.monotonic()
        if moment - self._made >= 0.001:
            self._text, self._made = datetime.now(timezone.utc).isoformat(), moment
        return self._text

