"""What to do with one delivery: archive it, dead-letter it (with the reason), or skip it because it
is a replay of an archived event."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pika.spec import Basic, BasicProperties

from eventreplay.broker import is_replay, properties_to_dict
from eventreplay.schema import InvalidEvent, parse_event
from eventreplay.store import NewEvent

log = logging.getLogger("eventreplay.ingest")

@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    body: bytes
    properties: dict  # the stored (JSON-able) view of the original AMQP properties
    routing_key: str
    exchange: str


class Replayed:
    """A message the Replay API sent: its event is archived already."""


REPLAYED = Replayed()


def triage(method: Basic.Deliver, properties: BasicProperties, body: bytes, received_at: datetime):
    """NewEvent | DeadLetter | REPLAYED for one delivery."""
    if is_replay(properties):
        return REPLAYED
    try:
        event = parse_event(body)
    except InvalidEvent as invalid:
        return DeadLetter(invalid.reason, body, properties_to_dict(properties), method.routing_key, method.exchange)
    except Exception as error:  # noqa: BLE001 - one message must never stop the archive
        # parse_event turns every known failure into InvalidEvent; anything else is a bug that a
        # redelivery would only repeat, so the message is dead-lettered with the error, not retried.
        log.error("message %r (routing key %r) could not be validated; dead-lettering it",
                  properties.message_id, method.routing_key, exc_info=error)
        reason = f"could not be validated: {type(error).__name__}: {_one_line(error)}"
        return DeadLetter(reason, body, properties_to_dict(properties), method.routing_key, method.exchange)
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


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""


def refused_by_store(event: NewEvent, reason: str) -> DeadLetter:
    """A valid event the store will never take (EventRejected): dead-lettered like an invalid one,
    so that one such message does not stop the archive."""
    return DeadLetter(f"refused by the event store: {reason}", event.body, dict(event.properties),
                      event.routing_key, event.exchange)
