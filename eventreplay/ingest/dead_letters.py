"""Sending an invalid message to the dead-letter queue: the original body and properties, with why
and where it came from in headers, through the default exchange straight to the queue."""
from __future__ import annotations

import logging

import pika
from pika.spec import BasicProperties

from eventreplay.broker import ConfirmedPublisher
from eventreplay.ingest.triage import DeadLetter

log = logging.getLogger(__name__)

REASON_HEADER = "x-dead-letter-reason"
MAX_REASON = 1000  # header values travel with every copy; the reason is one readable line anyway


def dead_letter_properties(letter: DeadLetter) -> BasicProperties:
    original = letter.properties
    headers = dict(original.headers or {})
    headers.update({
        REASON_HEADER: letter.reason[:MAX_REASON],
        "x-original-routing-key": letter.routing_key,
        "x-original-exchange": letter.exchange,
    })
    return BasicProperties(
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        headers=headers,
        # persistent whatever the original said: the dead-letter queue is where people look later
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        # no expiration: a dead letter must stay until someone has looked at it
        message_id=original.message_id,
        timestamp=original.timestamp,
        type=original.type,
        # no user_id: RabbitMQ rejects a user_id that is not our own connection's user
        app_id=original.app_id,
    )


def publish_dead_letters(publisher: ConfirmedPublisher, queue: str, letters: list[DeadLetter]) -> None:
    """Publish and wait until the broker has confirmed every one (only then may the originals be
    acked). Raises PublishFailed, TimeoutError or a connection error otherwise."""
    for letter in letters:
        log.warning(
            "dead-lettering a message from %r (routing key %r, message_id %r): %s",
            letter.exchange, letter.routing_key, letter.properties.message_id, letter.reason,
        )
        publisher.publish("", queue, letter.body, dead_letter_properties(letter), mandatory=True)
    publisher.wait_for_confirms()
