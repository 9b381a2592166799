"""How many returns the dead-letter queue allows each message before it drops it.

Browsing (and choosing some messages out of many) takes messages and returns them: a quorum queue
counts each return in the message's `x-delivery-count` and drops a message returned more than its
delivery limit (RabbitMQ 4.x: 20 unless configured). eventreplay declares its quorum queues with a
limit of a million (broker/topology.py), but a dead-letter queue declared by someone else may have
any. AMQP cannot read a queue's arguments, but a declare with other arguments is refused with a 406
that names the current value: that is how the limit is found here. A message whose next return could
reach the limit is not returned but published into the queue again (a new message: its count starts
again), so browsing never drops a message. A policy's `delivery-limit` (the lower of policy and
argument applies) is invisible over AMQP: see docs/api.md "Dead letters".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pika.exceptions

from eventreplay.broker.topology import DELIVERY_LIMIT

# a return costs one count, two when the channel is closed while its consumer is still active: the
# margin for a message held when a connection is lost
RETURN_COST = 2
# RabbitMQ 4.x quorum queues declared without a limit have this one
DEFAULT_LIMIT_SINCE_4 = 20
_CURRENT = re.compile(r"but current is (?:the value )?'?(none|-?\d+)")


@dataclass(frozen=True)
class DeliveryLimit:
    limit: int | None  # None: the queue never drops a returned message (a classic queue)

    def may_return(self, delivered_before: int) -> bool:
        """Whether a message the queue delivered `delivered_before` times before may be returned."""
        return self.limit is None or delivered_before + RETURN_COST < self.limit


def find_delivery_limit(connection: pika.BlockingConnection, queue: str) -> DeliveryLimit:
    """The delivery limit of an existing queue (declares on channels of its own)."""
    try:
        _declare(connection, queue, {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT})
        return DeliveryLimit(DELIVERY_LIMIT)
    except pika.exceptions.ChannelClosedByBroker as refused:
        text = str(refused.reply_text)
        if refused.reply_code != 406:
            raise
    if "'x-queue-type'" in text:
        return DeliveryLimit(None)  # a classic queue: returns are not counted
    found = _CURRENT.search(text) if "'x-delivery-limit'" in text else None
    if found is None:
        # another argument differs (x-max-length, ...): the limit is unknown, assume the smallest default
        return DeliveryLimit(DEFAULT_LIMIT_SINCE_4)
    if found.group(1) == "none":
        return DeliveryLimit(DEFAULT_LIMIT_SINCE_4 if _major_version(connection) >= 4 else None)
    value = int(found.group(1))
    return DeliveryLimit(None if value < 0 and _major_version(connection) >= 4 else max(value, 0))


def _declare(connection: pika.BlockingConnection, queue: str, arguments: dict) -> None:
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments=arguments)
    if channel.is_open:
        channel.close()


def _major_version(connection: pika.BlockingConnection) -> int:
    version = getattr(connection._impl, "server_properties", {}).get("version", b"0")  # noqa: SLF001
    text = version.decode() if isinstance(version, bytes) else str(version)
    try:
        return int(text.split(".", 1)[0])
    except ValueError:
        return 0
