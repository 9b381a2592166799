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
The parts: sql.py (tables, rows, transactions, errors), match.py (payload match in SQL), disk.py
(free space); this module holds the connections and the operations.
"""
from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from pathlib import Path
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from eventreplay.schema import canonical_uuid, read_json_or_none
from eventreplay.store.base import (
    ArchiveSpan, EventQuery, EventStore, FieldIndex, NewEvent, PersistenceError, StoredEvent, StoreUnavailable,
)
from eventreplay.store.sqlite import maintenance, per_minute
from eventreplay.store.sqlite.archive import (
    INSERT_KEY, TABLES, indexed_fields, keys_of, ready_fields, tally_existing,
)
from eventreplay.store.sqlite.disk import MIN_FREE_BYTES, check_free_space
from eventreplay.store.sqlite.reads import QueryPlan
from eventreplay.store.sqlite.sql import COLUMNS, INSERT, SCHEMA, event_of, row_of, translate, write_transaction


class SQLiteEventStore(EventStore):
    name = "SQLite store"

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 15.0, min_free_bytes: int = MIN_FREE_BYTES):
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._min_free_bytes = min_free_bytes
        self._local = threading.local()
        self._connections: list[tuple[weakref.ref, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._indexing = True  # did the last append find indexed fields? (guess yes: parse first)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"SQLite store: cannot create {self._path.parent}: {error}") from None
        conn = self._conn()
        try:
            conn.executescript(SCHEMA + TABLES)
            with write_transaction(conn):
                tally_existing(conn)
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
        rows = [row_of(event) for event in events]
        if not rows:
            return 0
        # parsed before the write lock is taken (when the last append saw indexed fields), so the
        # lock is held only for SQLite's own work; an archive without indexes parses nothing
        payloads = self._payloads(events, rows) if self._indexing else None
        conn = self._conn()
        try:
            with write_transaction(conn):
                # AUTOINCREMENT: new rows take the positions after the largest ever used, in order
                before = conn.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence"
                                      " WHERE name = 'events'").fetchone()[0]
                # rowcount sums each row's own change (1 new, 0 already stored), not the triggers'
                new = conn.executemany(INSERT, rows).rowcount
                fields = indexed_fields(conn)  # read under the lock: a field added meanwhile is not missed
                self._indexing = bool(fields)
                if fields and new:
                    if payloads is None:
                        payloads = self._payloads(events, rows)
                    # with no duplicate in the batch, the rows took before+1 ... before+n
                    stored = (enumerate((row[0] for row in rows), before + 1) if new == len(rows) else
                              conn.execute("SELECT position, event_id FROM events WHERE position > ?",
                                           (before,)).fetchall())
                    conn.executemany(INSERT_KEY, [(name, value, position) for position, event_id in stored
                                                  for name, value in keys_of(payloads[event_id], fields)])
        except sqlite3.Error as error:
            raise translate(error, f"appending {len(rows)} events") from None
        return new

    @staticmethod
    def _payloads(events: Sequence[NewEvent], rows: list[tuple]) -> dict[str, Any]:
        """event_id -> the parsed body (the caller's, when it gave one)."""
        return {row[0]: event.payload if event.payload is not None else read_json_or_none(row[3])
                for event, row in zip(events, rows)}

    # reads

    def _plan(self, query: EventQuery) -> QueryPlan:
        try:
            ready = ready_fields(self._conn())
        except sqlite3.Error as error:
            raise translate(error, "reading the indexed fields") from None
        return QueryPlan(query, self._conn, ready)

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        return self._plan(query).events()

    def count(self, query: EventQuery = EventQuery()) -> int:
        return self._plan(query).count()

    def reads_everything(self, query: EventQuery) -> bool:
        return self._plan(query).reads_everything

    def counts_by_type(self) -> dict[str, int]:
        try:
            rows = self._conn().execute(
                "SELECT event_type, count FROM type_counts WHERE count > 0 ORDER BY event_type").fetchall()
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
                f"SELECT {COLUMNS}, 1 FROM events WHERE event_id = ?", (key,)
            ).fetchone()
        except sqlite3.Error as error:
            raise translate(error, "getting an event") from None
        return event_of(row) if row else None

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

    # the archive over the years (maintenance.py)

    def _maintain(self, doing: str, work):
        try:
            return work(self._conn())
        except sqlite3.Error as error:
            raise translate(error, doing) from None

    def span(self) -> ArchiveSpan:
        return self._maintain("reading the archive's span", maintenance.span)

    def _counts_per_minute(self, start: datetime, minutes: int) -> list[int]:
        return self._maintain("counting events per minute", lambda conn: per_minute.counts_per_minute(
            conn, start, minutes))

    def prune(self, before: datetime, *, event_types: tuple[str, ...] | None = None,
              except_types: tuple[str, ...] = (), stop: threading.Event | None = None) -> int:
        return self._maintain("pruning", lambda conn: maintenance.prune(
            conn, before, event_types=event_types, except_types=except_types, stop=stop))

    def index_fields(self, fields: Sequence[str]) -> None:
        self._maintain("setting the indexed fields", lambda conn: maintenance.index_fields(conn, fields))

    def field_indexes(self) -> list[FieldIndex]:
        return self._maintain("reading the indexed fields", maintenance.field_indexes)

    def reindex(self, *, progress: Callable[[int, int], None] | None = None,
                stop: threading.Event | None = None) -> int:
        return self._maintain("reindexing", lambda conn: maintenance.reindex(conn, progress=progress, stop=stop))

    def check_free_space(self) -> None:
        # the database, its WAL and shared-memory files live in its folder
        check_free_space(self._path.parent, self._min_free_bytes)

    def probe_write(self) -> None:
        """The free space, then one small committed write (rewriting the single `write_probe` row):
        it passes only if SQLite can take the write lock, write the WAL and sync it."""
        if self._closed:
            raise StoreUnavailable("SQLite store is closed")
        self.check_free_space()
        conn = self._conn()
        try:
            with write_transaction(conn):
                conn.execute(
                    "INSERT INTO write_probe (id, probed_at_us) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET probed_at_us = excluded.probed_at_us",
                    (time.time_ns() // 1000,),
                )
        except sqlite3.Error as error:
            raise translate(error, f"a probe write to {self._path}") from None
