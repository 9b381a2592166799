"""Stores for tests: an EventStoreDB URL of a test's own, and seeding a store with events."""
from __future__ import annotations

from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventreplay.store import EventQuery, EventStore, NewEvent
from tests.support.names import unique


def with_stream_prefix(esdb_url: str, prefix: str) -> str:
    """The EventStoreDB URL with `streamPrefix`: every stream the store writes starts with it."""
    parts = urlsplit(esdb_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("streamPrefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def private_esdb_url(esdb_url: str) -> str:
    """An empty store on a shared EventStoreDB: the URL with a stream prefix of this test's own, so
    that tests sharing one server never see each other's events."""
    return with_stream_prefix(esdb_url, unique("t") + "-")


def seed(store: EventStore, events: Iterable[NewEvent], batch: int = 500) -> list[NewEvent]:
    """Append in batches; returns the events in the store's global order (EventStoreDB groups a
    batch by stream, so that is not always the append order). The store must hold nothing else."""
    out: list[NewEvent] = []
    chunk: list[NewEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= batch:
            store.append(chunk)
            out += chunk
            chunk = []
    if chunk:
        store.append(chunk)
        out += chunk
    by_id = {event.event_id: event for event in out}
    return [by_id[stored.event_id] for stored in store.read(EventQuery()) if stored.event_id in by_id]
