"""Sending an invalid message to the dead-letter queue: the original body and properties, with why
and where it came from in headers (the republishing rule of eventreplay/broker/properties.py),
through the default exchange straight to the queue."""
from __future__ import annotations

import logging
import uuid

from pika.spec import BasicProperties

from eventreplay.broker import ConfirmedPublisher, republished_properties
from eventreplay.dead_letters.letters import dead_letter_headers
from eventreplay.ingest.triage import DeadLetter

log = logging.getLogger(__name__)

MAX_REASON = 1000  # header values travel with every copy; the reason is one readable line anyway


def dead_letter_properties(letter: DeadLetter) -> BasicProperties:
    # an id of its own (x-dead-letter-id) and the time, so that an operator can find and choose it
    # (eventreplay/dead_letters/letters.py)
    fields = republished_properties(letter.properties, routing_key=letter.routing_key, exchange=letter.exchange,
                                    headers=dead_letter_headers(letter.reason[:MAX_REASON], str(uuid.uuid4())))
    fields.pop("expiration", None)  # a dead letter must stay until someone has looked at it
    return BasicProperties(**fields)


def publish_dead_letters(publisher: ConfirmedPublisher, queue: str, letters: list[DeadLetter]) -> None:
    """Publish and wait until the broker has confirmed every one (only then may the originals be
    acked). Raises PublishFailed, TimeoutError or a connection error otherwise."""
    for letter in letters:
        log.warning(
            "dead-lettering a message from %r (routing key %r, message_id %r): %s",
            letter.exchange, letter.routing_key, letter.properties.get("message_id"), letter.reason,
        )
        publisher.publish("", queue, letter.body, dead_letter_properties(letter))
    publisher.wait_for_confirms()
