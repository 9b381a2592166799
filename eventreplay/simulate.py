"""Event generation and publishing, as a library for the simulator, the tests and the benchmarks.

`EventFactory(seed)` is an endless, reproducible stream of `OutgoingEvent`s (routing key, body bytes,
AMQP properties) from the simulated shop (eventreplay/simulation/). `publish_events` sends such a
stream through a ConfirmedPublisher at a given rate; `simulate` adds what a long-running simulator
needs around it: connecting with retry, and reconnecting without losing the unconfirmed events.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator

from faker import Faker
from pika.spec import BasicProperties

from eventreplay.broker import CONNECTION_ERRORS, ConfirmedPublisher, declare_exchange, event_properties
from eventreplay.reconnect import Backoff, close_quietly, connect_until_stopped, describe_error
from eventreplay.schema import EVENT_TYPES, routing_key_for
from eventreplay.simulation.catalog import build_catalog
from eventreplay.simulation.shop import Shop

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class SteadyClock:
    """A clock that advances by a fixed step per reading: reproducible timestamps for tests."""

    def __init__(self, start: datetime, step: timedelta = timedelta(milliseconds=250)):
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        moment, self.now = self.now, self.now + self.step
        return moment


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    event_id: str
    event_type: str
    routing_key: str
    body: bytes
    properties: BasicProperties

    def payload(self) -> dict:
        return json.loads(self.body)


class EventFactory:
    """Simulated e-commerce events. The same seed gives the same events (ids, order of types,
    fields); timestamps come from `clock` (the wall clock by default; a SteadyClock reproduces them
    too). With `types`, only those types come out, picked from the same stream, so the lifecycles
    they show stay coherent (an order is shipped only after it was placed, even if OrderPlaced is
    not emitted)."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        types: Iterable[str] | None = None,
        clock: Clock = wall_clock,
        users: int = 200,
        products: int = 120,
    ):
        self.seed = secrets.randbits(32) if seed is None else seed
        self.types = _known_types(types)
        self._clock = clock
        self._rng = random.Random(self.seed)
        # separate randomness for ids: a change in what the shop draws never changes how ids look
        self._ids = random.Random(f"ids-{self.seed}")
        faker = Faker("en_US")
        faker.seed_instance(self.seed)
        self.catalog = build_catalog(faker, self._rng, users=users, products=products)
        self._shop = Shop(self.catalog, self._rng, faker)

    def __iter__(self) -> Iterator[OutgoingEvent]:
        for event_type, fields in self._shop.steps():
            # every step gets an id and a time, emitted or not: a filtered stream is then exactly a
            # subsequence of the unfiltered one
            event_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
            moment = self._clock()
            if self.types is not None and event_type not in self.types:
                continue
            yield make_event(event_id, event_type, moment, fields)

    def take(self, count: int) -> list[OutgoingEvent]:
        return list(itertools.islice(self, count))


def make_event(event_id: str, event_type: str, moment: datetime, fields: dict) -> OutgoingEvent:
    stamp = moment.astimezone(timezone.utc).isoformat()
    payload = {"event_id": event_id, "event_type": event_type, "timestamp": stamp, **fields}
    if event_type == "OrderDelivered":
        payload.setdefault("delivered_at", stamp)
    return OutgoingEvent(
        event_id=event_id,
        event_type=event_type,
        routing_key=routing_key_for(event_type),
        body=json.dumps(payload).encode("utf-8"),
        properties=event_properties(event_id=event_id, event_type=event_type, timestamp=moment.timestamp()),
    )


def _known_types(types: Iterable[str] | None) -> frozenset[str] | None:
    if types is None:
        return None
    chosen = frozenset(t.strip() for t in types if t.strip())
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
    return chosen or None


# publishing ----------------------------------------------------------------------------------------
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
    confirm_timeout: float = 30.0,
) -> PublishReport:
    """Publish until `count` events, `duration` seconds, a stop request, or the end of `events`;
    then wait until the broker has confirmed every one. `rate` is events per second (0: as fast as
    the broker confirms). Raises PublishInterrupted when the connection is lost, PublishFailed when
    the broker refuses a message. Takes from `events` only what it sends."""
    stop = stop or threading.Event()
    report = PublishReport()
    in_flight: dict[int, OutgoingEvent] = {}

    def confirmed(tokens) -> None:
        for token in tokens:
            in_flight.pop(token, None)
        report.confirmed += len(tokens)

    publisher.on_confirmed = confirmed
    source = iter(events)
    started = time.monotonic()
    shown = started
    try:
        for sequence in itertools.count():
            now = time.monotonic()
            if stop.is_set() or (count is not None and sequence >= count):
                break
            if duration is not None and now - started >= duration:
                break
            if rate > 0:
                due = started + sequence / rate
                while (wait := due - time.monotonic()) > 0 and not stop.is_set():
                    # waiting inside pika keeps confirms and heartbeats flowing
                    publisher.connection.process_data_events(time_limit=min(wait, 0.05))
                if stop.is_set():
                    break
            event = next(source, None)
            if event is None:
                break
            in_flight[sequence] = event  # before publish: its confirm may be handled inside it
            # counted before the attempt: a publish cut short by a lost connection may still have
            # reached the broker, and the event is sent again either way
            report.published += 1
            publisher.publish(
                exchange, event.routing_key, event.body, event.properties, token=sequence, mandatory=mandatory
            )
            if progress and now - shown >= 0.1:
                shown = now
                progress(report.published, report.confirmed)
        if progress:
            progress(report.published, report.confirmed)  # everything sent; the last confirms follow
        publisher.wait_for_confirms(timeout=confirm_timeout)
    except CONNECTION_ERRORS as error:
        report.elapsed = time.monotonic() - started
        raise PublishInterrupted(report, list(in_flight.values()), error) from error
    report.elapsed = time.monotonic() - started
    if progress:
        progress(report.published, report.confirmed)
    return report


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
    # grows across reconnects; reset only after progress, so a broker that accepts the connection
    # and then fails it at once (a full disk, an exchange declared with another type) is not
    # hammered
    backoff = Backoff()

    def overall(published: int, confirmed: int) -> None:
        if progress:
            progress(base_published + published, base_confirmed + confirmed)

    while not stop.is_set():
        connection = connect_until_stopped(amqp_url, client_name=plan.client_name, stop=stop, backoff=backoff)
        if connection is None:
            break
        base_published, base_confirmed = totals.published, totals.confirmed
        try:
            channel = connection.channel()
            declare_exchange(channel, plan.exchange)
            channel.close()
            publisher = ConfirmedPublisher(connection)
            left = None if plan.duration is None else max(0.0, plan.duration - (time.monotonic() - started))
            report = publish_events(
                publisher,
                pending,
                exchange=plan.exchange,
                rate=plan.rate,
                # every event handed out is confirmed or waits in `pending` to be sent again: this
                # many sends bring the distinct confirmed events to plan.count
                count=None if plan.count is None else plan.count - totals.confirmed,
                duration=left,
                stop=stop,
                progress=overall,
                mandatory=plan.mandatory,
            )
            totals.published += report.published
            totals.confirmed += report.confirmed
            break
        except PublishInterrupted as lost:
            totals.published += lost.report.published
            totals.confirmed += lost.report.confirmed
            totals.connections_lost += 1
            pending.send_again(lost.unconfirmed)
            log.warning("lost the connection to RabbitMQ (%s); reconnecting; events to send again: %d",
                        describe_error(lost.cause), pending.waiting_again)
        except CONNECTION_ERRORS as error:  # while declaring, before publishing
            totals.connections_lost += 1
            log.warning("lost the connection to RabbitMQ (%s); reconnecting", describe_error(error))
        finally:
            close_quietly(connection)
            totals.resent = pending.resent
        if totals.confirmed > base_confirmed:
            backoff.reset()
        else:
            stop.wait(backoff.next_delay())
    totals.elapsed = time.monotonic() - started
    return totals
