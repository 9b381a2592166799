"""The event store: one interface (base.py), one module per backend, chosen by EVENT_STORE_URL."""
from eventreplay.store.base import (
    ArchiveSpan,
    EventQuery,
    EventRejected,
    EventStore,
    FieldIndex,
    InvalidStoreURL,
    NewEvent,
    PersistenceError,
    StoredEvent,
    StoreUnavailable,
)
from eventreplay.store.factory import open_store

__all__ = [
    "ArchiveSpan", "FieldIndex", "EventQuery", "EventRejected", "EventStore", "InvalidStoreURL", "NewEvent", "PersistenceError", "StoredEvent",
    "StoreUnavailable", "open_store",
]
