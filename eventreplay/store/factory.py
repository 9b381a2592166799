"""Choose the backend from EVENT_STORE_URL."""
from __future__ import annotations

from eventreplay.store.base import EventStore, InvalidStoreURL


def open_store(url: str) -> EventStore:
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, or an esdbclient URI
    (`esdb://host:2113?Tls=false`, `esdb+discover://...`)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from eventreplay.store.sqlite import SQLiteEventStore

        return SQLiteEventStore.from_url(url)
    if scheme in ("esdb", "esdb+discover"):
        from eventreplay.store.esdb import EventStoreDBEventStore

        return EventStoreDBEventStore.from_url(url)
    raise InvalidStoreURL(
        f"EVENT_STORE_URL {url!r} is not supported: use sqlite:///PATH or esdb://HOST:PORT?Tls=false"
    )
