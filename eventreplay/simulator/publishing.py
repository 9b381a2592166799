"""Publishing simulated events: `publish_events` sends a stream through a ConfirmedPublisher at a
given rate; `simulate` adds what a long-running simulator needs around it: connecting with retry,
and reconnecting without losing or double-counting the unconfirmed events."""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from eventreplay.broker import CONNECTION_ERRORS, ConfirmedPublisher, close_quietly, connect_until_stopped, declare_exchange
from eventreplay.retrying import RetryPolicy, one_line
from eventreplay.simulator.events import OutgoingEvent

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    published: int = 0  # sends, re-sends included (a send cut short by a lost connection too)
    confirmed: int = 0  # distinct events confirmed by the broker: an event is confirmed at most once
    elapsed: float = 0.0
    resent: int = 0  # sends of events already sent once, unconfirmed when a connection was lost
    connections_lost: int = 0

    @property
    def rate(self) -> float:
        return self.confirmed / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        sends = f"{self.published} sends"
        if self.connections_lost:
            lost = f"{self.connections_lost} lost connection{'s' if self.connections_lost != 1 else ''}"
            sends += f" ({self.resent} sent again after {lost})"
        return (
            f"{self.confirmed} distinct events confirmed by the broker in {sends}, "
            f"in {self.elapsed:.1f} s ({self.rate:.0f} events/s)"
        )


class PublishInterrupted(Exception):
    """The connection was lost while publishing; `unconfirmed` are the events to send again."""

    def __init__(self, report: PublishReport, unconfirmed: list[OutgoingEvent], cause: BaseException):
        super().__init__(f"connection lost while publishing: {cause!r}")
        self.report, self.unconfirmed, self.cause = report, unconfirmed, cause


Progress = Callable[[int, int], None]  # (published, confirmed)


def publish_events(
    publisher: ConfirmedPublisher,
    events: Iterable[OutgoingEvent],
    *,
    exchange: str,
    rate: float = 0.0,
    count: int | None = None,
    duration: float | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    mandatory: bool = False,
) -> PublishReport:
    """Publish until `count` events, `duration` seconds, a stop request, or the end of `events`;
    then wait until the broker has confirmed every one. `rate` is events per second (0: as fast as
    the broker confirms). Raises PublishInterrupted when the connection is lost, PublishFailed when
    the broker refuses a message. Takes from `events` only what it sends."""
    stop = stop or threading.Event()
    report = PublishReport()
    tracker = publisher.tracker
    source = iter(events)
    started = time.monotonic()
    shown = started
    taken: OutgoingEvent | None = None  # taken from `events`, not yet handed to the publisher
    try:
        for sequence in itertools.count():
            now = time.monotonic()
            if stop.is_set() or (count is not None and sequence >= count):
                break
            if duration is not None and now - started >= duration:
                break
            if rate > 0 and not _wait_for_turn(publisher, started + sequence / rate, stop):
                break
            taken = next(source, None)
            if taken is None:
                break
            # counted before the attempt: a publish cut short by a lost connection may still have
            # reached the broker, and the event is sent again either way
            report.published += 1
            publisher.publish(exchange, taken.routing_key, taken.body, taken.properties, item=taken,
                              mandatory=mandatory)
            taken = None
            if progress and now - shown >= 0.1:
                shown = now
                progress(report.published, tracker.confirmed)
        if progress:
            progress(report.published, tracker.confirmed)  # everything sent; the last confirms follow
        publisher.wait_for_confirms()
    except CONNECTION_ERRORS as error:
        report.elapsed, report.confirmed = time.monotonic() - started, tracker.confirmed
        unconfirmed = tracker.connection_lost()
        if taken is not None and (not unconfirmed or unconfirmed[-1] is not taken):
            unconfirmed.append(taken)
        raise PublishInterrupted(report, unconfirmed, error) from error
    report.elapsed, report.confirmed = time.monotonic() - started, tracker.confirmed
    if progress:
        progress(report.published, report.confirmed)
    return report


def _wait_for_turn(publisher: ConfirmedPublisher, due: float, stop: threading.Event) -> bool:
    """Wait until `due` (monotonic time) serving the connection: what waits in the buffer goes out,
    confirms and heartbeats flow. False when stopped meanwhile."""
    while (wait := due - time.monotonic()) > 0 and not stop.is_set():
        publisher.serve(min(wait, 0.05))
    return not stop.is_set()


class PendingEvents:
    """The events still to publish: first those to send again (unconfirmed when a connection was
    lost), then the rest of the stream.

    An iterator object, not a generator, on purpose: every publishing round takes from this one
    object, and a round that ends by an exception must leave it whole for the next. A generator
    wrapping the stream (`yield from stream`) is closed when the failed round lets go of it, and
    closing it closes the stream: the next round would find no events, and the run would end as if
    complete."""

    def __init__(self, events: Iterable[OutgoingEvent]):
        self._again: collections.deque[OutgoingEvent] = collections.deque()
        self._stream = iter(events)
        self.resent = 0  # events handed out again

    def __iter__(self) -> "PendingEvents":
        return self

    def __next__(self) -> OutgoingEvent:
        if self._again:
            self.resent += 1
            return self._again.popleft()
        return next(self._stream)

    def send_again(self, events: Iterable[OutgoingEvent]) -> None:
        """Queue `events`, in their order, ahead of everything still pending (they were sent before
        the events still waiting to be sent again from an earlier loss)."""
        self._again.extendleft(reversed(list(events)))

    @property
    def waiting_again(self) -> int:
        return len(self._again)


@dataclass
class SimulationPlan:
    exchange: str
    rate: float = 5.0
    count: int | None = None  # distinct events confirmed, re-sends after a lost connection not counted
    duration: float | None = None
    mandatory: bool = False
    client_name: str = "eventreplay-simulator"
    totals: PublishReport = field(default_factory=PublishReport)


def simulate(
    amqp_url: str,
    events: Iterable[OutgoingEvent],
    plan: SimulationPlan,
    *,
    stop: threading.Event,
    progress: Progress | None = None,
) -> PublishReport:
    """Run the simulator: one connection for the whole run, a new one only after the broker went
    away. The events it had not confirmed are sent again first (the archive dedups by event_id), so
    that `plan.count` distinct events are confirmed in the end, however many connections are lost;
    fewer only when stopped, after `plan.duration`, or when `events` run out."""
    totals = plan.totals
    started = time.monotonic()
    pending = PendingEvents(events)
    # delays grow across reconnects and start again only after progress, so a broker that accepts
    # the connection and then fails it at once (an exchange declared with another type) is not hammered
    retry = RetryPolicy(interrupt=stop)
    while not stop.is_set():
        connection = connect_until_stopped(amqp_url, client_name=plan.client_name, policy=retry)
        if connection is None:
            break
        confirmed_before = totals.confirmed
        try:
            if _publish_round(connection, pending, plan, started, stop, progress):
                break
        finally:
            close_quietly(connection)
            totals.resent = pending.resent
        if totals.confirmed > confirmed_before:
            retry.progressed()
        else:
            stop.wait(retry.failed())
    totals.elapsed = time.monotonic() - started
    return totals


def _publish_round(connection, pending: PendingEvents, plan: SimulationPlan, started: float,
                   stop: threading.Event, progress: Progress | None) -> bool:
    """Publish on one connection until the plan is done (True) or the connection is lost (False,
    the unconfirmed events queued in `pending` to be sent again)."""
    totals = plan.totals
    base_published, base_confirmed = totals.published, totals.confirmed

    def overall(published: int, confirmed: int) -> None:
        if progress:
            progress(base_published + published, base_confirmed + confirmed)

    try:
        channel = connection.channel()
        declare_exchange(channel, plan.exchange)
        channel.close()
        left = None if plan.duration is None else max(0.0, plan.duration - (time.monotonic() - started))
        report = publish_events(
            ConfirmedPublisher(connection), pending, exchange=plan.exchange, rate=plan.rate,
            # every event handed out is confirmed or waits in `pending` to be sent again: this many
            # sends bring the distinct confirmed events to plan.count
            count=None if plan.count is None else plan.count - totals.confirmed,
            duration=left, stop=stop, progress=overall, mandatory=plan.mandatory,
        )
    except PublishInterrupted as lost:
        report = lost.report
        pending.send_again(lost.unconfirmed)
        log.warning("lost the connection to RabbitMQ (%s); reconnecting; events to send again: %d",
                    one_line(lost.cause), pending.waiting_again)
    except CONNECTION_ERRORS as error:  # while declaring, before publishing
        totals.connections_lost += 1
        log.warning("lost the connection to RabbitMQ (%s); reconnecting", one_line(error))
        return False
    else:
        totals.published += report.published
        totals.confirmed += report.confirmed
        return True
    totals.published += report.published
    totals.confirmed += report.confirmed
    totals.connections_lost += 1
    return False
