"""What to do with one delivery: archive it, dead-letter it (with the reason), or skip it because it
is a replay of an archived event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pika.spec import Basic, BasicProperties

from eventreplay.broker import properties_from_dict, properties_to_dict
from eventreplay.schema import InvalidEvent, parse_event
from eventreplay.store import NewEvent

REPLAY_HEADER = "x-replay-id"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    body: bytes
    properties: BasicProperties
    routing_key: str
    exchange: str


class Replayed:
    """A message the Replay API sent: its event is archived already."""


REPLAYED = Replayed()


def triage(method: Basic.Deliver, properties: BasicProperties, body: bytes, received_at: datetime):
    """NewEvent | DeadLetter | REPLAYED for one delivery."""
    headers = properties.headers
    if headers and REPLAY_HEADER in headers:
        return REPLAYED
    try:
        event = parse_event(body)
    except InvalidEvent as invalid:
        return DeadLetter(invalid.reason, body, properties, method.routing_key, method.exchange)
    return NewEvent(
        event_id=event.event_id,
        event_type=event.event_type,
        timestamp=event.timestamp,
        body=body,
        routing_key=method.routing_key,
        exchange=method.exchange,
        received_at=received_at,
        properties=properties_to_dict(properties),
    )


def refused_by_store(event: NewEvent, reason: str) -> DeadLetter:
    """A valid event the store will never take (EventRejected): dead-lettered like an invalid one,
    so that one such message does not stop the archive."""
    return DeadLetter(f"refused by the event store: {reason}", event.body, properties_from_dict(dict(event.properties)),
                      event.routing_key, event.exchange)
