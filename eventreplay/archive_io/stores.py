"""The stores as these commands use them: opened from a URL (a wrong one is one readable error),
read with the stream always closed, appended with the one retry policy, and named without the
password a URL may carry."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from eventreplay.retrying import RetryPolicy, one_line
from eventreplay.store import EventStore, NewEvent, PersistenceError, StoredEvent, StoreUnavailable, open_store
from eventreplay.store.urls import ESDBLocation, SQLiteLocation, StoreLocation, parse_store_url

log = logging.getLogger("eventreplay.archive_io")

GIVE_UP_S = 120.0  # how long an unavailable store is waited out before the command fails


def same_store(a: StoreLocation, b: StoreLocation) -> bool:
    if isinstance(a, SQLiteLocation) and isinstance(b, SQLiteLocation):
        return a.path.resolve() == b.path.resolve()
    if isinstance(a, ESDBLocation) and isinstance(b, ESDBLocation):
        return (a.uri, a.stream_prefix) == (b.uri, b.stream_prefix)
    return False


def open_checked(url: str, *, must_exist: bool = False) -> EventStore:
    """The store of `url`, answering. `must_exist`: an SQLite file that is not there is an error (a
    store to read from), not a new empty archive."""
    where = parse_store_url(url)  # InvalidStoreURL with the reason
    if must_exist and isinstance(where, SQLiteLocation) and not Path(where.path).is_file():
        raise PersistenceError(f"no SQLite store at {where.path} (from {display_url(url)})")
    store = open_store(where)
    try:
        store.ping()  # an unreachable EventStoreDB is an error now, not after a long wait
    except BaseException:
        store.close()
        raise
    return store


def display_url(url: str) -> str:
    """The URL without its password, for messages and state files."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def closing(events: Iterator[StoredEvent]) -> Iterator[StoredEvent]:
    """The store's stream, closed however the loop over it ends (ends a server-side read)."""
    try:
        yield from events
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def as_new(event: StoredEvent) -> NewEvent:
    """A stored event as an event to append elsewhere (everything but its position)."""
    return NewEvent(
        event_id=event.event_id, event_type=event.event_type, timestamp=event.timestamp, body=event.body,
        routing_key=event.routing_key, exchange=event.exchange, received_at=event.received_at,
        properties=event.properties,
    )


def append_retrying(store: EventStore, events: Sequence[NewEvent], policy: RetryPolicy, *, say=log.warning) -> int:
    """`store.append`, an unavailable store waited out with the policy's growing delays (an append
    is idempotent, so a batch whose answer was lost is harmless to send again)."""

    def on_fault(error: BaseException, delay: float) -> None:
        say(f"the store is unavailable ({one_line(error)}); retrying in {delay:.1f} s")

    for attempt in policy.retrying(StoreUnavailable, doing="append", on_fault=on_fault):
        with attempt:
            new = store.append(events)
    policy.progressed()
    return new
