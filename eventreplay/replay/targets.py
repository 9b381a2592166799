"""Where a replay publishes to, checked on the broker before anything is sent.

A passive declare on a throwaway channel tells whether a queue or exchange exists: RabbitMQ answers a
missing one by closing that channel with 404, which leaves the connection usable. An existing queue is
used whatever its type; a queue created for a replay (`create_queue`) gets the type of QUEUE_TYPE,
like every queue eventreplay declares.
"""
from __future__ import annotations

import logging
from typing import Callable

import pika
import pika.exceptions

from eventreplay.broker.topology import DEFAULT_QUEUE_TYPE, declare_queue
from eventreplay.replay.spec import ReplaySpec

log = logging.getLogger(__name__)


class TargetNotFound(Exception):
    """The target queue or exchange does not exist (HTTP 404)."""


class TargetRefused(Exception):
    """The broker refuses the target (exclusive queue of another connection, access refused...)."""


def _passive_check(connection: pika.BlockingConnection, declare: Callable, what: str) -> bool:
    channel = connection.channel()
    try:
        declare(channel)
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code == 404:
            return False
        raise TargetRefused(f"the broker refuses {what}: {closed.reply_text}") from None
    channel.close()
    return True


def ensure_target(connection: pika.BlockingConnection, spec: ReplaySpec, *,
                  queue_type: str = DEFAULT_QUEUE_TYPE) -> None:
    """Raise TargetNotFound / TargetRefused unless the spec's target can receive messages; with
    `create_queue`, declare a missing target queue (durable, of `queue_type`)."""
    if spec.target_queue is not None:
        queue = spec.target_queue
        if _passive_check(connection, lambda ch: ch.queue_declare(queue, passive=True), f"queue {queue!r}"):
            return
        if not spec.create_queue:
            raise TargetNotFound(
                f"queue {queue!r} does not exist; create it first or send \"create_queue\": true"
            )
        try:
            declared = declare_queue(connection, queue, queue_type)
        except pika.exceptions.ChannelClosedByBroker as closed:
            raise TargetRefused(f"cannot declare queue {queue!r}: {closed.reply_text}") from None
        log.info("declared the replay target queue %r (%s)", queue, declared)
    elif spec.target_exchange is not None:
        exchange = spec.target_exchange
        if not _passive_check(
            connection, lambda ch: ch.exchange_declare(exchange, passive=True), f"exchange {exchange!r}"
        ):
            raise TargetNotFound(f"exchange {exchange!r} does not exist")
