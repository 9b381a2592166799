"""The SQLite side of the store: its tables, how an event becomes a row and back, the write
transaction, and SQLite's errors in the store's error family."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator


from eventreplay.schema import canonical_uuid, dump_json, read_json
from eventreplay.store.base import NewEvent, PersistenceError, StoredEvent, StoreUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    timestamp_us INTEGER NOT NULL,
    body BLOB NOT NULL,
    routing_key TEXT NOT NULL,
    exchange TEXT NOT NULL,
    received_at_us INTEGER NOT NULL,
    properties TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type_position ON events (event_type, position);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp_us);
CREATE TABLE IF NOT EXISTS write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at_us INTEGER NOT NULL
);
"""

COLUMNS = "position, event_id, event_type, timestamp_us, body, routing_key, exchange, received_at_us, properties"
INSERT = (
    "INSERT INTO events (event_id, event_type, timestamp_us, body, routing_key, exchange, received_at_us,"
    " properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

# Outages a caller should wait out (busy after busy_timeout, I/O, full disk, file vanished) as opposed
# to a broken file or a bug.
_TRANSIENT_CODES = {
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY,
}


def to_us(moment: datetime) -> int:
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return (aware - _EPOCH) // _MICROSECOND


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def row_of(event: NewEvent) -> tuple:
    """The INSERT parameters of an event (its id spelled the one way: dedup by event_id)."""
    return (
        canonical_uuid(event.event_id), event.event_type, to_us(event.timestamp), bytes(event.body),
        event.routing_key, event.exchange, to_us(event.received_at),
        dump_json(dict(event.properties)).decode(),
    )


def event_of(row) -> StoredEvent:
    """A StoredEvent from a row of COLUMNS."""
    return StoredEvent(
        position=row[0], event_id=row[1], event_type=row[2], timestamp=from_us(row[3]), body=bytes(row[4]),
        routing_key=row[5], exchange=row[6], received_at=from_us(row[7]), properties=read_json(row[8]),
    )


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error. IMMEDIATE takes the write lock up front,
    so a second writer waits in busy_timeout instead of failing on a read-to-write upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def translate(error: sqlite3.Error, doing: str) -> PersistenceError:
    code = getattr(error, "sqlite_errorcode", None)
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    message = f"SQLite store: {doing} failed: {error} ({name})"
    if code is not None and (code & 0xFF) in _TRANSIENT_CODES:
        return StoreUnavailable(message)
    if code is None and isinstance(error, sqlite3.OperationalError):
        # Errors raised by the module itself (e.g. "unable to open database file" before a code
        # exists) are environmental.
        return StoreUnavailable(message)
    return PersistenceError(message)
