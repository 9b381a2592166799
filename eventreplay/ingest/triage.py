"""What to do with one delivery: archive it, dead-letter it (with the reason), or skip it because it
is a replay of an archived event."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pika.spec import Basic, BasicProperties

from eventreplay.broker import is_replay, properties_to_dict
from eventreplay.dead_letters.letters import redriven_original
from eventreplay.schema import InvalidEvent, parse_event
from eventreplay.store import NewEvent

log = logging.getLogger("eventreplay.ingest")

# What a reason is about, as a bounded set (a metric label; the reason itself is free text).
REASON_KINDS = ("not_utf8", "invalid_json", "not_an_object", "missing_field", "invalid_field", "refused_by_store",
                "validation_error", "other")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    body: bytes
    properties: dict  # the stored (JSON-able) view of the original AMQP properties
    routing_key: str
    exchange: str
    kind: str = "other"  # one of REASON_KINDS


def reason_kind(reason: str) -> str:
    """The kind of an InvalidEvent's reason (eventreplay/schema.py parse_event words them)."""
    if reason.startswith("body is not UTF-8"):
        return "not_utf8"
    if reason.startswith(("body is not valid JSON", "body is not usable JSON", "body is JSON nested")):
        return "invalid_json"
    if reason.startswith("body is JSON "):
        return "not_an_object"
    if reason.startswith("invalid "):
        return "missing_field" if "Field required" in reason else "invalid_field"
    return "other"


class Replayed:
    """A message the Replay API sent: its event is archived already."""


REPLAYED = Replayed()


def triage(method: Basic.Deliver, properties: BasicProperties, body: bytes, received_at: datetime):
    """NewEvent | DeadLetter | REPLAYED for one delivery."""
    if is_replay(properties):
        return REPLAYED
    # a dead letter sent back by a redrive is archived as its first delivery would have been
    redriven = redriven_original(properties)
    routing_key, exchange, stored = ((redriven.routing_key, redriven.exchange, redriven.properties) if redriven
                                     else (method.routing_key, method.exchange, properties_to_dict(properties)))
    try:
        event = parse_event(body)
    except InvalidEvent as invalid:
        return DeadLetter(invalid.reason, body, stored, routing_key, exchange, reason_kind(invalid.reason))
    except Exception as error:  # noqa: BLE001 - one message must never stop the archive
        # parse_event turns every known failure into InvalidEvent; anything else is a bug that a
        # redelivery would only repeat, so the message is dead-lettered with the error, not retried.
        log.error("message %r (routing key %r) could not be validated; dead-lettering it",
                  properties.message_id, method.routing_key, exc_info=error)
        reason = f"could not be validated: {type(error).__name__}: {_one_line(error)}"
        return DeadLetter(reason, body, stored, routing_key, exchange, "validation_error")
    return NewEvent(
        event_id=event.event_id,
        event_type=event.event_type,
        timestamp=event.timestamp,
        body=body,
        routing_key=routing_key,
        exchange=exchange,
        received_at=received_at,
        properties=stored,
        payload=event.payload,
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""


def refused_by_store(event: NewEvent, reason: str) -> DeadLetter:
    """A valid event the store will never take (EventRejected): dead-lettered like an invalid one,
    so that one such message does not stop the archive."""
    return DeadLetter(f"refused by the event store: {reason}", event.body, dict(event.properties),
                      event.routing_key, event.exchange, "refused_by_store")
