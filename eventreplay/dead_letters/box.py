"""DeadLetterBox: browse, redrive and discard the dead-letter queue's messages, one operation at a
time (a lock), each on a connection of its own.

How a message is looked at without being taken: the box consumes with manual acks on a channel of
its own and, once it has looked, cancels its consumer and returns (nacks with requeue) what it did
not choose; the queue gives them back in their order. Each look counts as a delivery of the message
(see delivery_limit.py for why none is dropped). An operation covers the messages that are in the
queue when it starts (their count, read first): what arrives meanwhile, such as a redriven message
the consumer refuses again, is left for the next one.

Redrive: each chosen message is published with confirms to the archive queue alone (default
exchange, routing key ARCHIVE_QUEUE: publishing through the exchange would give a second copy to
every other queue bound to it, which had the original) and acked from the dead-letter queue only
once confirmed. A crash between the two leaves it in the dead-letter queue as well: a second redrive
sends it again, and the store keeps one copy (it dedups by event_id).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import pika
import pika.exceptions
from pika.spec import BasicProperties

from eventreplay.broker import (
    CONNECTION_ERRORS, ConfirmedPublisher, PublishFailed, close_quietly, connect, queue_stats,
)
from eventreplay.dead_letters.delivery_limit import DeliveryLimit, find_delivery_limit
from eventreplay.dead_letters.letters import (
    DeadLetterView, delivery_count, redrive_properties, refreshed_properties, view_of,
)
from eventreplay.retrying import one_line

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000  # messages a browse looks at (and at most held, not chosen, by a redrive or discard)
DELIVERY_WAIT = 2.0  # seconds without a delivery after which the rest of the queue is someone else's
CONFIRM_EVERY = 500  # chosen messages published before their confirms are awaited and they are acked


class BoxUnavailable(Exception):
    """The broker cannot be reached, or did not confirm what was sent: nothing unconfirmed was
    removed from the dead-letter queue."""


class NoArchiveQueue(Exception):
    """A redrive without the archive queue to send to."""


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operation takes: those with this reason and/or among these ids (both:
    the intersection; neither: all)."""
    reason: str | None = None
    ids: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.reason is None and self.ids is None

    def chooses(self, letter: DeadLetterView) -> bool:
        return (self.reason is None or letter.reason == self.reason) and (self.ids is None or letter.id in self.ids)


@dataclass
class Listing:
    total: int  # messages in the dead-letter queue (ready)
    by_reason: list[tuple[str, int]]  # over the messages looked at (the first SCAN_LIMIT), most first
    items: list[DeadLetterView]
    looked_at: int


@dataclass
class Outcome:
    done: int  # redriven or discarded
    remaining: int  # messages in the dead-letter queue afterwards


@dataclass
class _Held:
    tag: int
    properties: BasicProperties
    body: bytes


@dataclass
class _Sweep:
    """Deliveries of one operation: the messages not chosen are held (unacked) until the end."""
    expected: int
    seen: int = 0
    taken: int = 0
    held: list[_Held] = field(default_factory=list)
    last_delivery: float = field(default_factory=time.monotonic)


class DeadLetterBox:
    def __init__(self, amqp_url: str, dead_letter_queue: str, archive_queue: str, *,
                 client_name: str = "eventreplay-dead-letters", scan_limit: int = SCAN_LIMIT,
                 delivery_wait: float = DELIVERY_WAIT):
        self.amqp_url = amqp_url
        self.queue = dead_letter_queue
        self.archive_queue = archive_queue
        self.client_name = client_name
        self.scan_limit = scan_limit
        self.delivery_wait = delivery_wait
        self._lock = threading.Lock()  # two operations must never fight over the same messages

    # the operations ---------------------------------------------------------------------------
    def browse(self, reason: str | None = None, limit: int = 100) -> Listing:
        """The first `limit` dead letters (of `reason`), counts by reason over the first
        `scan_limit` messages; every message stays in the queue, in its place."""
        selection = Selection(reason=reason)
        looked: list[DeadLetterView] = []

        def look(_channel, _held: _Held, letter: DeadLetterView) -> bool:
            looked.append(letter)
            return False  # nothing is taken

        total = self._operate(look, scan=True)
        counts = Counter(letter.reason for letter in looked)
        items = [letter for letter in looked if selection.chooses(letter)][:limit]
        return Listing(total=total, by_reason=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
                       items=items, looked_at=len(looked))

    def redrive(self, selection: Selection) -> Outcome:
        """Send the chosen dead letters back to the archive queue (see the module docstring)."""
        redriven_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pending: list[int] = []
        count = [0]
        publisher: list[ConfirmedPublisher] = []

        def confirm_and_ack(channel) -> None:
            if pending:
                publisher[0].wait_for_confirms()
                for tag in pending:
                    channel.basic_ack(tag)
                count[0] += len(pending)
                pending.clear()

        def take(channel, held: _Held, letter: DeadLetterView) -> bool:
            if not selection.chooses(letter):
                return False
            if not publisher:
                publisher.append(ConfirmedPublisher(channel.connection))
            publisher[0].publish("", self.archive_queue, held.body, redrive_properties(held.properties, redriven_at))
            pending.append(held.tag)
            if len(pending) >= CONFIRM_EVERY:
                confirm_and_ack(channel)
            return True

        remaining = self._operate(take, finish=confirm_and_ack, needs_archive=True)
        if count[0]:
            log.info("redrove %d dead letters from %r to %r", count[0], self.queue, self.archive_queue)
        return Outcome(done=count[0], remaining=remaining)

    def discard(self, selection: Selection) -> Outcome:
        """Remove the chosen dead letters for good."""
        count = [0]

        def take(channel, held: _Held, letter: DeadLetterView) -> bool:
            if not selection.chooses(letter):
                return False
            channel.basic_ack(held.tag)
            count[0] += 1
            return True

        remaining = self._operate(take)
        if count[0]:
            log.warning("discarded %d dead letters from %r", count[0], self.queue)
        return Outcome(done=count[0], remaining=remaining)

    # the sweep over the queue -----------------------------------------------------------------
    def _operate(self, take: Callable[..., bool], *, finish: Callable | None = None, scan: bool = False,
                 needs_archive: bool = False) -> int:
        """Run `take(channel, held, letter)` on each message in the queue now (True: it took the
        message; False: returned at the end). Returns the queue's depth: at the start for a scan,
        afterwards otherwise."""
        with self._lock:
            connection = self._connect()
            try:
                depth = self._depth(connection, self.queue)
                if depth is None:
                    return 0  # no dead-letter queue yet: nothing was ever dead-lettered
                if needs_archive and self._depth(connection, self.archive_queue) is None:
                    raise NoArchiveQueue(f"the archive queue {self.archive_queue!r} does not exist: start the "
                                         "consumer (it declares it) before redriving")
                if depth == 0:
                    return 0
                limit = find_delivery_limit(connection, self.queue)
                expected = min(depth, self.scan_limit) if scan else depth
                taken = self._sweep(connection, expected, take, finish, limit)
                # also after a browse: the next operation must see the queue's whole depth
                after = self._depth_after(connection, at_least=depth - taken)
                return depth if scan else after
            except (PublishFailed, TimeoutError) as error:
                raise BoxUnavailable(f"RabbitMQ did not confirm the redriven messages ({one_line(error)}); "
                                     "those not confirmed are still in the dead-letter queue") from error
            except CONNECTION_ERRORS as error:
                raise BoxUnavailable(f"RabbitMQ is not reachable or closed the connection "
                                     f"({type(error).__name__}: {one_line(error) or 'no detail'})") from error
            finally:
                close_quietly(connection)  # whatever is still unacked goes back to the queue

    def _sweep(self, connection, expected: int, take, finish, limit: DeliveryLimit) -> int:
        """Deliver the messages to `take`, then give back the rest; returns how many it took."""
        channel = connection.channel()
        # a browse holds everything it looks at; an operation holds what it does not take, at most
        # scan_limit of them (beyond, the broker delivers no more and the operation ends there)
        channel.basic_qos(prefetch_count=min(expected, self.scan_limit, 65_535))
        sweep = _Sweep(expected)

        def on_message(_channel, method, properties, body) -> None:
            sweep.seen += 1
            sweep.last_delivery = time.monotonic()
            held = _Held(method.delivery_tag, properties, body)
            # a message beyond those in the queue at the start arrived meanwhile: not this operation's
            if sweep.seen <= sweep.expected and take(channel, held, view_of(properties, body)):
                sweep.taken += 1
            else:  # the body is kept only where it is published again (see _give_back)
                keep = not limit.may_return(delivery_count(properties))
                sweep.held.append(_Held(held.tag, properties, body if keep else b""))

        consumer_tag = channel.basic_consume(self.queue, on_message, auto_ack=False)
        while sweep.seen < sweep.expected and len(sweep.held) < self.scan_limit:
            connection.process_data_events(time_limit=0.1)
            if time.monotonic() - sweep.last_delivery > self.delivery_wait:
                break  # the rest is held by another client (or was taken meanwhile)
        channel.basic_cancel(consumer_tag)  # first: a return while consuming would be delivered again
        if finish is not None:
            finish(channel)
        self._give_back(connection, channel, sweep.held, limit)
        channel.close()
        return sweep.taken

    def _give_back(self, connection, channel, held: list[_Held], limit: DeliveryLimit) -> None:
        """Return the messages not taken to the queue, in their order; one whose return could reach
        the queue's delivery limit is published into it again instead (then acked)."""
        at_risk = [message for message in held if not limit.may_return(delivery_count(message.properties))]
        if at_risk:
            publisher = ConfirmedPublisher(connection)
            for message in at_risk:
                publisher.publish("", self.queue, message.body, refreshed_properties(message.properties))
            publisher.wait_for_confirms()
            for message in at_risk:
                channel.basic_ack(message.tag)
            publisher.close()
            log.info("published %d dead letters into %r again: their delivery count neared the queue's limit (%s)",
                     len(at_risk), self.queue, limit.limit)
        # one by one, in delivery order: a quorum queue requeues the messages of one multiple nack
        # in no particular order, and those of single nacks in the order they come
        for message in held:
            if limit.may_return(delivery_count(message.properties)):
                channel.basic_nack(message.tag, multiple=False, requeue=True)

    def _depth_after(self, connection: pika.BlockingConnection, *, at_least: int) -> int:
        """The queue's depth once the messages given back are counted again: the broker counts a
        return a moment after it, so the depth is read until it reaches what was left (bounded)."""
        deadline = time.monotonic() + self.delivery_wait
        while True:
            depth = self._depth(connection, self.queue) or 0
            if depth >= at_least or time.monotonic() > deadline:
                return depth
            connection.sleep(0.02)

    def _connect(self) -> pika.BlockingConnection:
        try:
            return connect(self.amqp_url, client_name=self.client_name)
        except (*CONNECTION_ERRORS, ValueError) as error:
            raise BoxUnavailable(f"RabbitMQ is not reachable ({type(error).__name__}: "
                                 f"{one_line(error) or 'no detail'})") from error

    @staticmethod
    def _depth(connection: pika.BlockingConnection, queue: str) -> int | None:
        """Ready messages in the queue; None when it does not exist."""
        stats = queue_stats(connection, queue)
        return None if stats is None else stats.messages
