"""The embedded backend: one SQLite file, the default where no EventStoreDB is configured.

Guarantees
- Exactly-once by event_id, always: `event_id` is UNIQUE and a batch is one `BEGIN IMMEDIATE`
  transaction of `INSERT ... ON CONFLICT(event_id) DO NOTHING`, so a re-delivered message is skipped
  however old it is, also when several processes (consumer and API) write the same file.
- Durable before `append` returns: WAL with `synchronous=FULL` syncs the WAL on every commit.
  (`NORMAL` in WAL mode may lose the last commits on power loss, which would break "acked only after
  it is durably stored".)
- `position` is an AUTOINCREMENT rowid: strictly increasing with commit order, never reused.
- Reads page by position (`WHERE position > ? ... LIMIT n`), each page a short statement of its own,
  so memory stays flat and no reader holds a snapshot that stops WAL checkpoints.

Threads: the store is shared by the API's request and replay-job threads; each thread gets its own
connection (a sqlite3 connection must not be used by two threads at once), and close() closes all.
Other parts keep their own tables in the same file (the replay jobs: eventreplay/replay/job_records/
sqlite.py); this module owns the `events` table and the one-row `write_probe` table.

A full disk: reads still work (ping passes), appends fail with SQLITE_FULL. `probe_write` tells
whether appending can work again: first the free space of the database's filesystem (a WAL file that
was checkpointed is reused from its start without growing, so a small write may well succeed on a
full disk while the next checkpoint, or a real batch, cannot), then a small committed write.
"""
from __future__ import annotations

import heapq
import json
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from eventreplay.schema import canonical_uuid
from eventreplay.store.query import payload_matches
from eventreplay.store.base import (
    EventQuery,
    EventStore,
    NewEvent,
    PersistenceError,
    StoredEvent,
    StoreUnavailable,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

# Outages a caller should wait out (busy after busy_timeout, I/O, full disk, file vanished) as opposed
# to a broken file or a bug.
_TRANSIENT_CODES = {
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY,
}

# Exact integer comparisons in SQL stop at 2**53 once one side is a REAL; past that Python decides.
_SAFE_INT = 2**53

_SCHEMA = """
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

# Free space below which the disk counts as full (probe_write, check_free_space): room for a few
# batches of typical events in the WAL (500 take about 0.7 MB) and for the checkpoint that copies
# them into the database file. Resuming with less would only meet SQLITE_FULL again.
MIN_FREE_BYTES = 4 * 1024 * 1024

_COLUMNS = "position, event_id, event_type, timestamp_us, body, routing_key, exchange, received_at_us, properties"


def _to_us(moment: datetime) -> int:
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return (aware - _EPOCH) // _MICROSECOND


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
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


def free_bytes(directory: Path) -> int:
    """Bytes this process may still write on the filesystem holding `directory`: root may also use
    the blocks the filesystem reserves for it (ext4's 5%), anyone else only the available ones."""
    stat = os.statvfs(directory)
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize


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


class _MatchPlan:
    """`EventQuery.match` split into SQL conditions whose result equals Python `==` on the parsed
    payload, and the keys left to Python.

    SQL equality is used only where it is provably the same as Python's: str (json_type 'text' keeps a
    JSON object/array's text from matching a string), None (JSON null, key present), bool and ints
    within +-2**53 (SQLite compares INTEGER/REAL numerically, and JSON true/false are 1/0 as in Python
    where True == 1 == 1.0). Floats, big ints, lists, dicts, non-string keys go to Python. Bodies
    SQLite does not take as JSON (Python accepts NaN/Infinity) are always re-checked in Python via
    the `json_ok` column. Known difference: a body with duplicate keys uses the first value in SQLite
    and the last in Python; RFC 8259 leaves that undefined and the producers never send it.
    """

    def __init__(self, match: dict[str, Any] | None):
        self.sql: list[str] = []
        self.params: list[Any] = []
        self.python: dict[Any, Any] = {}
        for key, value in (match or {}).items():
            if not isinstance(key, str) or '"' in key or "\\" in key or not key.isprintable():
                self.python[key] = value
                continue
            path = f'$."{key}"'  # quoted member name: dots, brackets and spaces are literal
            if value is None:
                self.sql.append("json_type(CAST(body AS TEXT), ?) = 'null'")
                self.params.append(path)
            elif isinstance(value, str):
                self.sql.append(
                    "(json_type(CAST(body AS TEXT), ?) = 'text' AND json_extract(CAST(body AS TEXT), ?) = ?)"
                )
                self.params += [path, path, value]
            elif isinstance(value, (bool, int)) and -_SAFE_INT < int(value) < _SAFE_INT:
                self.sql.append(
                    "(json_type(CAST(body AS TEXT), ?) IN ('integer', 'real', 'true', 'false')"
                    " AND json_extract(CAST(body AS TEXT), ?) = ?)"
                )
                self.params += [path, path, int(value)]
            else:
                self.python[key] = value

    @property
    def needed(self) -> bool:
        return bool(self.sql)

    def where(self) -> tuple[str, list[Any]]:
        """Rows SQLite cannot parse pass through to the Python check."""
        if not self.sql:
            return "", []
        return (
            f"(NOT json_valid(CAST(body AS TEXT)) OR ({' AND '.join(self.sql)}))",
            list(self.params),
        )


class SQLiteEventStore(EventStore):
    PAGE_SIZE = 1000
    # Below this many events in a time window, the timestamp index beats a scan in position order
    # (each page then sorts the window's remaining rows, which is cheap only for small windows).
    NARROW_WINDOW = 20_000

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 15.0, min_free_bytes: int = MIN_FREE_BYTES):
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._min_free_bytes = min_free_bytes
        self._local = threading.local()
        self._connections: list[tuple[weakref.ref, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"SQLite store: cannot create {self._path.parent}: {error}") from None
        conn = self._conn()
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise translate(error, f"creating the schema in {self._path}") from None

    @property
    def path(self) -> Path:
        return self._path

    # connections

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise PersistenceError("SQLite store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            # check_same_thread=False only so that close() may close connections of other threads;
            # each connection is still used by its own thread alone.
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as error:
            raise translate(error, f"opening {self._path}") from None
        with self._connections_lock:
            # Threads that ended (finished replay jobs) leave connections behind; close those here.
            alive = []
            for ref, other in self._connections:
                thread = ref()
                if thread is None or not thread.is_alive():
                    other.close()
                else:
                    alive.append((ref, other))
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def close(self) -> None:
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for _, conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    # writes

    def append(self, events: Sequence[NewEvent]) -> int:
        rows = []
        for event in events:
            rows.append((
                canonical_uuid(event.event_id),
                event.event_type,
                _to_us(event.timestamp),
                bytes(event.body),
                event.routing_key,
                event.exchange,
                _to_us(event.received_at),
                json.dumps(dict(event.properties), ensure_ascii=False, default=str),
            ))
        if not rows:
            return 0
        conn = self._conn()
        try:
            with _write_transaction(conn):
                before = conn.total_changes
                conn.executemany(
                    "INSERT INTO events (event_id, event_type, timestamp_us, body, routing_key, exchange,"
                    " received_at_us, properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (event_id) DO NOTHING",
                    rows,
                )
                new = conn.total_changes - before
        except sqlite3.Error as error:
            raise translate(error, f"appending {len(rows)} events") from None
        return new

    # reads

    def _where(self, query: EventQuery, plan: _MatchPlan, *, types: tuple[str, ...] | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if types is not None:
            clauses.append(f"event_type IN ({', '.join('?' * len(types))})")
            params += types
        if query.since is not None:
            clauses.append("timestamp_us >= ?")
            params.append(_to_us(query.since))
        if query.until is not None:
            clauses.append("timestamp_us < ?")
            params.append(_to_us(query.until))
        if query.up_to_position is not None:
            clauses.append("position <= ?")
            params.append(query.up_to_position)
        sql, match_params = plan.where()
        if sql:
            clauses.append(sql)
            params += match_params
        return clauses, params

    def _row(self, row) -> StoredEvent:
        return StoredEvent(
            position=row[0],
            event_id=row[1],
            event_type=row[2],
            timestamp=_from_us(row[3]),
            body=bytes(row[4]),
            routing_key=row[5],
            exchange=row[6],
            received_at=_from_us(row[7]),
            properties=json.loads(row[8]),
        )

    def _pages(self, query: EventQuery, plan: _MatchPlan, types: tuple[str, ...] | None,
               index: str) -> Iterator[StoredEvent]:
        """Every row matching the SQL part, in position order, one short statement per page."""
        clauses, params = self._where(query, plan, types=types)
        json_ok = "json_valid(CAST(body AS TEXT))" if plan.needed else "1"
        cursor_position = query.after_position if query.after_position is not None else -1
        while True:
            sql = (
                f"SELECT {_COLUMNS}, {json_ok} FROM events {index}"
                f" WHERE {' AND '.join(clauses + ['position > ?'])} ORDER BY position LIMIT {self.PAGE_SIZE}"
            )
            try:
                rows = self._conn().execute(sql, params + [cursor_position]).fetchall()
            except sqlite3.Error as error:
                raise translate(error, "reading events") from None
            for row in rows:
                if not row[9] and query.match and not payload_matches(row[4], dict(query.match)):
                    continue  # SQLite could not judge this body; Python did, and said no
                yield self._row(row)
            if len(rows) < self.PAGE_SIZE:
                return
            cursor_position = rows[-1][0]

    def _narrow_window(self, query: EventQuery) -> bool:
        if query.since is None and query.until is None:
            return False
        clauses, params = self._where(query, _MatchPlan(None), types=None)
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM events INDEXED BY events_timestamp"
            f" WHERE {' AND '.join(clauses)} LIMIT {self.NARROW_WINDOW + 1})"
        )
        try:
            return self._conn().execute(sql, params).fetchone()[0] <= self.NARROW_WINDOW
        except sqlite3.Error as error:
            raise translate(error, "estimating a time window") from None

    def read(self, query: EventQuery = EventQuery()) -> Iterator[StoredEvent]:
        if self._closed:
            raise PersistenceError("SQLite store is closed")
        return self._read(query)

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        if query.selects_nothing:
            return
        plan = _MatchPlan(dict(query.match) if query.match else None)
        if query.event_types is not None:
            # One ordered index walk per type, merged by position: `type IN (...) ORDER BY position`
            # would sort every remaining row of those types on every page.
            streams = [
                self._pages(query, plan, (event_type,), "INDEXED BY events_type_position")
                for event_type in dict.fromkeys(query.event_types)
            ]
            events = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda e: e.position)
        elif self._narrow_window(query):
            events = self._pages(query, plan, None, "INDEXED BY events_timestamp")
        else:
            events = self._pages(query, plan, None, "NOT INDEXED")
        produced = 0
        for event in events:
            if plan.python and not payload_matches(event.body, plan.python):
                continue
            yield event
            produced += 1
            if query.limit is not None and produced >= query.limit:
                return

    def count(self, query: EventQuery = EventQuery()) -> int:
        plan = _MatchPlan(dict(query.match) if query.match else None)
        if plan.python or plan.needed:
            # json_valid fallbacks and Python-only keys need the rows; counting them streams.
            return sum(1 for _ in self.read(query))
        if query.selects_nothing:
            return 0
        clauses, params = self._where(query, plan, types=query.event_types)
        if query.after_position is not None:
            clauses.append("position > ?")
            params.append(query.after_position)
        inner = "SELECT 1 FROM events" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        if query.limit is not None:
            inner += f" LIMIT {int(query.limit)}"
        try:
            return self._conn().execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]
        except sqlite3.Error as error:
            raise translate(error, "counting events") from None

    def counts_by_type(self) -> dict[str, int]:
        try:
            rows = self._conn().execute(
                "SELECT event_type, count(*) FROM events GROUP BY event_type ORDER BY event_type"
            ).fetchall()
        except sqlite3.Error as error:
            raise translate(error, "counting events by type") from None
        return dict(rows)

    def get(self, event_id: str) -> StoredEvent | None:
        try:
            key = canonical_uuid(event_id)
        except ValueError:
            return None
        try:
            row = self._conn().execute(
                f"SELECT {_COLUMNS}, 1 FROM events WHERE event_id = ?", (key,)
            ).fetchone()
        except sqlite3.Error as error:
            raise translate(error, "getting an event") from None
        return self._row(row) if row else None

    def last_position(self) -> int:
        try:
            row = self._conn().execute("SELECT max(position) FROM events").fetchone()
        except sqlite3.Error as error:
            raise translate(error, "reading the last position") from None
        return row[0] or 0

    def ping(self) -> None:
        if self._closed:
            raise StoreUnavailable("SQLite store is closed")
        try:
            self._conn().execute("SELECT position FROM events ORDER BY position DESC LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise translate(error, f"querying {self._path}") from None

    def check_free_space(self) -> None:
        directory = self._path.parent  # the database, its WAL and shared-memory files live here
        try:
            free = free_bytes(directory)
        except OSError as error:
            raise StoreUnavailable(f"SQLite store: cannot tell the free space of {directory}: {error}") from None
        if free < self._min_free_bytes:
            raise StoreUnavailable(
                f"SQLite store: disk full: {free} bytes free on the filesystem of {directory} "
                f"(appending needs at least {self._min_free_bytes})"
            )

    def probe_write(self) -> None:
        """The free space, then one small committed write (rewriting the single `write_probe` row):
        it passes only if SQLite can take the write lock, write the WAL and sync it."""
        if self._closed:
            raise StoreUnavailable("SQLite store is closed")
        self.check_free_space()
        conn = self._conn()
        try:
            with _write_transaction(conn):
                conn.execute(
                    "INSERT INTO write_probe (id, probed_at_us) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET probed_at_us = excluded.probed_at_us",
                    (time.time_ns() // 1000,),
                )
        except sqlite3.Error as error:
            raise translate(error, f"a probe write to {self._path}") from None


__all__ = ["SQLiteEventStore"]
