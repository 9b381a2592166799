"""The event store named by EVENT_STORE_URL (parsed once, by urls.py)."""
from __future__ import annotations

from eventreplay.store.base import EventStore
from eventreplay.store.urls import ESDBLocation, SQLiteLocation, StoreLocation, parse_store_url


def open_store(url: str | StoreLocation) -> EventStore:
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, or an esdbclient URI
    (`esdb://host:2113?Tls=false`, `esdb+discover://...`). Connecting to EventStoreDB is lazy: a
    consumer starting while it is down waits for it instead of crashing."""
    location = parse_store_url(url) if isinstance(url, str) else url
    if isinstance(location, SQLiteLocation):
        from eventreplay.store.sqlite import SQLiteEventStore

        return SQLiteEventStore(location.path)
    assert isinstance(location, ESDBLocation)
    from eventreplay.store.esdb import EventStoreDBEventStore

    return EventStoreDBEventStore(location.uri, stream_prefix=location.stream_prefix)
