"""The EventStore interface every backend implements, and the one family of errors they raise.

A backend stores archived events (the original body bytes plus what the broker told us about them)
and gives each one a global position. Appends are idempotent by event_id. Reads stream: memory does
not grow with the size of the result.
"""
from __future__ import annotations

import abc
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence


MAX_CHART_MINUTES = 24 * 60  # counts_per_minute answers a day at most: its cost grows with the window


class PersistenceError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(PersistenceError):
    """The store cannot be reached now; the operation may succeed later."""


class EventRejected(PersistenceError):
    """The store refuses some events of a batch for good: retrying cannot help (an event larger than
    the backend accepts, say). Nothing of the batch was stored. `reasons` maps event_id -> why."""

    def __init__(self, reasons: Mapping[str, str]):
        self.reasons = dict(reasons)
        first = next(iter(self.reasons.items()), ("?", "?"))
        super().__init__(f"{len(self.reasons)} event(s) refused by the store, e.g. {first[0]}: {first[1]}")

    def __reduce__(self):  # pickled as it was built (it crosses to the consumer from a writer process)
        return type(self), (self.reasons,)


class InvalidStoreURL(PersistenceError, ValueError):
    """EVENT_STORE_URL names no backend we know, or is malformed."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as the consumer received it, ready to be appended."""

    event_id: str  # canonical UUID text
    event_type: str
    timestamp: datetime  # the event's own time, aware UTC
    body: bytes  # the original message body, kept byte for byte
    routing_key: str
    exchange: str
    received_at: datetime  # when the consumer received it, aware UTC
    properties: Mapping[str, Any] = field(default_factory=dict)  # AMQP properties, JSON-able; headers inside
    # the body already parsed, when the caller has it (the consumer validated it): the store then
    # reads the indexed fields from it instead of parsing the body a second time
    payload: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ArchiveSpan:
    """What the archive holds: how many events, from when to when, and what retention removed."""

    events: int
    oldest: datetime | None  # the oldest stored event's own timestamp
    newest: datetime | None
    pruned_before: datetime | None  # events older than this were deleted by the retention (None: never)


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """One indexed payload field: `ready` once events archived before it was indexed are in it too."""

    field: str
    ready: bool
    backfilled_to: int  # position up to which events from before the field was indexed are in it
    since_position: int  # events after this position were indexed as they were stored


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int  # global order across the whole store; strictly increasing with append order
    event_id: str
    event_type: str
    timestamp: datetime
    body: bytes
    routing_key: str
    exchange: str
    received_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> Any:
        return json.loads(self.body)


from eventreplay.store.query import EventQuery  # noqa: E402 - the query reads StoredEvent and NewEvent above


class EventStore(abc.ABC):
    """The archive. Implementations translate their driver's errors into PersistenceError."""

    @abc.abstractmethod
    def append(self, events: Sequence[NewEvent]) -> int:
        """Store a batch durably (all or nothing) before returning. Events whose event_id is already
        stored (or repeated within the batch) are skipped. Returns how many were new."""

    name = "event store"  # in messages: "SQLite store is closed"
    _closed = False

    def read(self, query: EventQuery = EventQuery()) -> Iterator[StoredEvent]:
        """Stream the matching events in global order. A closed store raises now, not at the first
        event; a query no event can satisfy reads nothing."""
        if self._closed:
            raise PersistenceError(f"{self.name} is closed")
        if query.selects_nothing:
            return iter(())
        return _at_most(self._read(query), query.limit)

    @abc.abstractmethod
    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        """The events matching the query (all but its limit), in global order, streamed."""

    @abc.abstractmethod
    def count(self, query: EventQuery = EventQuery()) -> int:
        """How many events match (limit and after_position honoured)."""

    @abc.abstractmethod
    def counts_by_type(self) -> dict[str, int]:
        """Every stored event type with its count."""

    @abc.abstractmethod
    def get(self, event_id: str) -> StoredEvent | None:
        """One event by id, or None."""

    @abc.abstractmethod
    def last_position(self) -> int:
        """The position of the newest stored event (0 when empty). Events appended afterwards get
        greater positions, so `EventQuery(up_to_position=...)` fixes a read to this moment's content."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable with the reason if the store cannot serve reads now. Cheap; note
        that a store whose disk is full still passes (reading needs no room): see probe_write."""

    @abc.abstractmethod
    def probe_write(self) -> None:
        """Raise StoreUnavailable with the reason unless the store takes writes now, as far as this
        client can tell (each backend says how far that is). For deciding that an outage is over
        before appending again; it may cost a durable commit, so not for frequent health checks."""

    def check_free_space(self) -> None:
        """Raise StoreUnavailable("... disk full: N bytes free ...") when the disk this process
        writes the store to has too little room left for an append. Cheap (no I/O on the store),
        for readiness checks. By default there is nothing to check: a store behind a server
        (EventStoreDB) keeps its data on the server's disk, which the client cannot see."""

    # the archive over the years -------------------------------------------------------------
    @abc.abstractmethod
    def span(self) -> ArchiveSpan:
        """How many events, the oldest and newest timestamps, the retention applied; cheap."""

    def counts_per_minute(self, start: datetime, minutes: int) -> list[int]:
        """Events per minute by their own timestamp: item i counts the events with `start + i min
        <= timestamp < start + (i+1) min` (`start` naive means UTC). For the ingest chart (the
        last hour): its cost is bounded by the events of the window, never by the archive's size
        (each backend says how)."""
        if self._closed:
            raise PersistenceError(f"{self.name} is closed")
        if not 0 < minutes <= MAX_CHART_MINUTES:
            raise ValueError(f"minutes must be 1..{MAX_CHART_MINUTES}, not {minutes}")
        aware = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start.astimezone(timezone.utc)
        return self._counts_per_minute(aware, minutes)

    @abc.abstractmethod
    def _counts_per_minute(self, start: datetime, minutes: int) -> list[int]:
        """counts_per_minute with its arguments checked (`start` aware UTC)."""

    @abc.abstractmethod
    def prune(self, before: datetime, *, event_types: tuple[str, ...] | None = None,
              except_types: tuple[str, ...] = (), stop: threading.Event | None = None) -> int:
        """Delete the events whose timestamp is earlier than `before` (only `event_types` when
        given, never `except_types`), in short transactions that never hold writers back for
        long; counts and indexes stay exact. Returns how many were deleted."""

    @abc.abstractmethod
    def index_fields(self, fields: Sequence[str]) -> None:
        """Index these top-level payload fields from now on, as events are stored (the writer's
        INDEXED_FIELDS); events stored before become indexed by `reindex`."""

    @abc.abstractmethod
    def field_indexes(self) -> list[FieldIndex]:
        """The payload fields indexed, and whether each index covers the whole archive."""

    @abc.abstractmethod
    def reindex(self, *, progress: Callable[[int, int], None] | None = None,
                stop: threading.Event | None = None) -> int:
        """Index the events stored before their fields were indexed, in short transactions
        (ingest goes on), resumable: progress is kept in the store. `progress(done, total)`.
        Returns how many events were indexed."""

    def reads_everything(self, query: EventQuery) -> bool:
        """True when counting this query would read every event in its range (a payload match no
        index serves): callers that also read the events then count while reading instead."""
        return bool(query.match)

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _at_most(events: Iterator[StoredEvent], limit: int | None) -> Iterator[StoredEvent]:
    """The first `limit` events; the backend's stream is closed as soon as they are out."""
    if limit is None:
        yield from events
        return
    try:
        for count, event in enumerate(events, 1):
            yield event
            if count >= limit:
                return
    finally:
        close = getattr(events, "close", None)  # a generator: its statement or stream ends now
        if close is not None:
            close()
