"""The simulated events: `EventFactory(seed)` is an endless, reproducible stream of `OutgoingEvent`s
(routing key, body bytes, AMQP properties) from the simulated shop (shop.py, catalog.py)."""
from __future__ import annotations

import itertools
import json
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator

from faker import Faker
from pika.spec import BasicProperties

from eventreplay.broker import event_properties
from eventreplay.schema import EVENT_TYPES, routing_key_for
from eventreplay.simulator.catalog import build_catalog
from eventreplay.simulator.shop import Shop

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
