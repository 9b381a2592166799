"""The archive's exchange and queues, declared idempotently by whoever needs them first.

Queues are declared with the type of QUEUE_TYPE (settings.py): `quorum` (replicated over the nodes of
a cluster, RabbitMQ's durable queue type since 3.8; on a single node a one-member quorum queue) or
`classic` (declared without arguments, as eventreplay always did).

A quorum queue counts the returns of each message (a consumer's connection lost while it held the
message counts too: the consumer's whole prefetch, on every reconnect) and RabbitMQ 4.0-4.2 drop a
message returned more than 20 times (their default `delivery-limit`). The archive must never lose a
message that way, so our quorum queues are declared with a delivery limit of DELIVERY_LIMIT (not -1:
RabbitMQ 3.x reads -1 as "drop at the first return").

A queue that already exists with the other type (RabbitMQ answers 406 PRECONDITION_FAILED "inequivalent
arg 'x-queue-type'") is used as it is: its messages stay where they are, a warning says how to move
to the configured type (README, "Quorum queues and clusters"). It is declared again with its own type,
so that any other difference (x-max-length, ...) is still refused as before. A quorum queue that
exists with another delivery limit (or none) is used as it is too, with a warning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pika
import pika.exceptions

log = logging.getLogger(__name__)

QUEUE_TYPES = ("quorum", "classic")
DEFAULT_QUEUE_TYPE = "quorum"
DELIVERY_LIMIT = 1_000_000  # returns of one message before a quorum queue drops it: in effect never

_warned: set[tuple[str, str]] = set()  # (queue, type in use): the migration hint once per process


def declare_exchange(channel, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)


def queue_arguments(queue_type: str) -> dict[str, str] | None:
    """The queue.declare arguments of a durable queue of that type."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"unknown queue type {queue_type!r} (expected one of {', '.join(QUEUE_TYPES)})")
    if queue_type == "quorum":
        return {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
    return None


def declare_queue(connection, queue: str, queue_type: str = DEFAULT_QUEUE_TYPE) -> str:
    """Declare a durable queue of `queue_type`, each declare on a channel of its own (a refusal closes
    the channel, never the connection). Returns the type the queue has: `queue_type`, or the other
    one when the queue already existed with it (logged). Other refusals raise ChannelClosedByBroker."""
    try:
        _declare_tolerating_delivery_limit(connection, queue, queue_type)
        return queue_type
    except pika.exceptions.ChannelClosedByBroker as refused:
        if _inequivalent_argument(refused) != "x-queue-type":
            raise
    existing = "classic" if queue_type == "quorum" else "quorum"
    _declare_tolerating_delivery_limit(connection, queue, existing)  # another inequivalent argument raises
    _warn_once(queue, existing,
               "queue %r exists as a %s queue, QUEUE_TYPE asks for %s: using it as it is (nothing is moved or lost). "
               "To change its type, see README \"Quorum queues and clusters\" (declare the new queue under another "
               "name beside it, let the old one drain, delete it), or set QUEUE_TYPE=%s to silence this",
               queue, existing, queue_type, existing)
    return existing


def _declare_tolerating_delivery_limit(connection, queue: str, queue_type: str) -> None:
    """Declare; a quorum queue that exists with another delivery limit (or none) is taken as it is."""
    try:
        _declare_on_own_channel(connection, queue, queue_arguments(queue_type))
    except pika.exceptions.ChannelClosedByBroker as refused:
        if queue_type != "quorum" or _inequivalent_argument(refused) != "x-delivery-limit":
            raise
        _declare_on_own_channel(connection, queue, None, passive=True)
        _warn_once(queue, "delivery-limit",
                   "quorum queue %r exists with another delivery limit than ours (%d): using it as it is. On "
                   "RabbitMQ 4.0-4.2 a quorum queue without one drops a message returned 20 times (every reconnect "
                   "of a consumer holding it counts): give it a policy, e.g. rabbitmqctl set_policy --apply-to "
                   "queues NAME '^QUEUE$' '{\"delivery-limit\": %d}'", queue, DELIVERY_LIMIT, DELIVERY_LIMIT)


def _inequivalent_argument(refused: pika.exceptions.ChannelClosedByBroker) -> str | None:
    """The argument a 406 "inequivalent arg 'x-...'" names (None for any other refusal)."""
    text = str(refused.reply_text)
    if refused.reply_code != 406 or "inequivalent arg '" not in text:
        return None
    return text.split("inequivalent arg '", 1)[1].split("'", 1)[0]


def _warn_once(queue: str, what: str, message: str, *args) -> None:
    level = logging.WARNING if (queue, what) not in _warned else logging.DEBUG
    _warned.add((queue, what))
    log.log(level, message, *args)


def _declare_on_own_channel(connection, queue: str, arguments: dict | None, *, passive: bool = False) -> None:
    channel = connection.channel()
    channel.queue_declare(queue, passive=passive, durable=True, arguments=arguments)
    if channel.is_open:
        channel.close()


@dataclass(frozen=True)
class ArchiveTopology:
    exchange: str
    queue: str
    dead_letter_queue: str
    queue_type: str = DEFAULT_QUEUE_TYPE

    def declare(self, channel) -> None:
        """The durable topic exchange, the archive queue bound with `#`, and the dead-letter queue
        (fed directly by the consumer with the reason in a header), both of `queue_type` unless they
        exist with the other type. `channel` stays usable whatever the queues' declares meet."""
        declare_exchange(channel, self.exchange)
        declare_queue(channel.connection, self.queue, self.queue_type)
        channel.queue_bind(self.queue, self.exchange, routing_key="#")
        declare_queue(channel.connection, self.dead_letter_queue, self.queue_type)


@dataclass(frozen=True)
class QueueStats:
    messages: int  # ready to deliver (not counting those delivered and not yet acked)
    consumers: int


def queue_stats(connection: pika.BlockingConnection, name: str) -> QueueStats | None:
    """Depth and consumer count of a queue, by a passive declare on a throwaway channel (a 404
    closes only that channel); None when the queue does not exist."""
    channel = connection.channel()
    try:
        ok = channel.queue_declare(name, passive=True).method
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code == 404:
            return None
        raise
    if channel.is_open:
        channel.close()
    return QueueStats(messages=ok.message_count, consumers=ok.consumer_count)
