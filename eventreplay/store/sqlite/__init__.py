"""The embedded backend: one SQLite file, the default where no EventStoreDB is configured (store.py
says what it guarantees)."""
from eventreplay.store.sqlite.disk import MIN_FREE_BYTES, free_bytes
from eventreplay.store.sqlite.sql import translate
from eventreplay.store.sqlite.store import SQLiteEventStore

__all__ = ["MIN_FREE_BYTES", "SQLiteEventStore", "free_bytes", "translate"]
