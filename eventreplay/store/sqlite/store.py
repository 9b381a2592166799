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

import heapq
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Iterator, Sequence

from eventreplay.schema import canonical_uuid
from eventreplay.store.base import EventQuery, EventStore, NewEvent, PersistenceError, StoredEvent, StoreUnavailable
from eventreplay.store.query import payload_matches
from eventreplay.store.sqlite.disk import MIN_FREE_BYTES, check_free_space
from eventreplay.store.sqlite.match import MatchPlan
from eventreplay.store.sqlite.sql import (
    COLUMNS, INSERT, SCHEMA, event_of, row_of, to_us, translate, write_transaction,
)


class SQLiteEventStore(EventStore):
    name = "SQLite store"

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
            conn.executescript(SCHEMA)
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
        conn = self._conn()
        try:
            with write_transaction(conn):
                before = conn.total_changes
                conn.executemany(INSERT, rows)
                new = conn.total_changes - before
        except sqlite3.Error as error:
            raise translate(error, f"appending {len(rows)} events") from None
        return new

    # reads

    def _where(self, query: EventQuery, plan: MatchPlan, *, types: tuple[str, ...] | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if types is not None:
            clauses.append(f"event_type IN ({', '.join('?' * len(types))})")
            params += types
        if query.since is not None:
            clauses.append("timestamp_us >= ?")
            params.append(to_us(query.since))
        if query.until is not None:
            clauses.append("timestamp_us < ?")
            params.append(to_us(query.until))
        if query.up_to_position is not None:
            clauses.append("position <= ?")
            params.append(query.up_to_position)
        sql, match_params = plan.where()
        if sql:
            clauses.append(sql)
            params += match_params
        return clauses, params

    def _pages(self, query: EventQuery, plan: MatchPlan, types: tuple[str, ...] | None,
               index: str) -> Iterator[StoredEvent]:
        """Every row matching the SQL part, in position order, one short statement per page."""
        clauses, params = self._where(query, plan, types=types)
        json_ok = "json_valid(CAST(body AS TEXT))" if plan.needed else "1"
        cursor_position = query.after_position if query.after_position is not None else -1
        while True:
            sql = (
                f"SELECT {COLUMNS}, {json_ok} FROM events {index}"
                f" WHERE {' AND '.join(clauses + ['position > ?'])} ORDER BY position LIMIT {self.PAGE_SIZE}"
            )
            try:
                rows = self._conn().execute(sql, params + [cursor_position]).fetchall()
            except sqlite3.Error as error:
                raise translate(error, "reading events") from None
            for row in rows:
                if not row[9] and query.match and not payload_matches(row[4], dict(query.match)):
                    continue  # SQLite could not judge this body; Python did, and said no
                yield event_of(row)
            if len(rows) < self.PAGE_SIZE:
                return
            cursor_position = rows[-1][0]

    def _narrow_window(self, query: EventQuery) -> bool:
        if query.since is None and query.until is None:
            return False
        clauses, params = self._where(query, MatchPlan(None), types=None)
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM events INDEXED BY events_timestamp"
            f" WHERE {' AND '.join(clauses)} LIMIT {self.NARROW_WINDOW + 1})"
        )
        try:
            return self._conn().execute(sql, params).fetchone()[0] <= self.NARROW_WINDOW
        except sqlite3.Error as error:
            raise translate(error, "estimating a time window") from None

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        plan = MatchPlan(dict(query.match) if query.match else None)
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
        for event in events:
            if plan.python and not payload_matches(event.body, plan.python):
                continue
            yield event

    def count(self, query: EventQuery = EventQuery()) -> int:
        plan = MatchPlan(dict(query.match) if query.match else None)
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
