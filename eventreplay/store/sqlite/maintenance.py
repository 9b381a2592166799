"""Keeping a SQLite archive in shape over the years: which payload fields are indexed and the
backfill of their index (`reindex`), the retention's deletes (`prune`), and what the archive spans.

Every write here is a short transaction, its rows read before the write lock is taken, and after
each one the lock is left free for at least as long as it was held (a prune step: four times as long):
the consumer, which writes the same file, waits for one short step at most instead of starving behind
back-to-back transactions (SQLite's busy handler polls the lock; it would rarely find a gap of
microseconds). Each step checkpoints the pages it wrote itself, so that the consumer's next commit
does not pay for copying them into the database file. Each step's
progress is in the database, so an interrupted reindex or prune continues where it stopped.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime
from typing import Callable, Sequence

from eventreplay.store.base import ArchiveSpan, FieldIndex
from eventreplay.schema import read_json_or_none
from eventreplay.store.sqlite.archive import BLOCK_BITS, DELETE_KEY, INSERT_KEY, indexed_fields, keys_of
from eventreplay.store.sqlite.sql import from_us, to_us, write_transaction

Connection = Callable[[], sqlite3.Connection]
REINDEX_STEP = 2_000  # positions per reindex transaction
PRUNE_STEP = 200  # events per prune transaction (a hold of a few ms)
LEAST_PAUSE_S = 0.005  # the lock is left free at least this long after each step
# Deletes dirty pages all over the file (the event-id and key indexes are in random order): a step's
# I/O lasts beyond its transaction. The pause after it is this many times its hold, so the disk has
# room for the consumer's commits too.
PAUSE_PER_HOLD = 4


class _Paced:
    """A write transaction, a passive checkpoint, then a pause of `pause_per_hold` times the time the
    lock was held (at least LEAST_PAUSE_S)."""

    def __init__(self, conn: sqlite3.Connection, pause_per_hold: float = 1.0):
        self.conn = conn
        self.pause_per_hold = pause_per_hold

    def __enter__(self) -> None:
        self._transaction = write_transaction(self.conn)
        self._transaction.__enter__()
        self._started = time.monotonic()

    def __exit__(self, *failure) -> None:
        self._transaction.__exit__(*failure)
        if failure[0] is None:
            held = time.monotonic() - self._started
            # this step's pages are copied into the database file by the step itself, outside the
            # lock (PASSIVE never blocks a writer), not by the consumer's next commit crossing the
            # auto-checkpoint threshold
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            time.sleep(max(held * self.pause_per_hold, LEAST_PAUSE_S))


def index_fields(conn: sqlite3.Connection, fields: Sequence[str]) -> None:
    """Index `fields` from now on: new fields start at the archive's last position (what comes
    before waits for `reindex`); every append after this commit writes their keys."""
    wanted = list(dict.fromkeys(fields))
    with write_transaction(conn):
        known = {row[0] for row in conn.execute("SELECT field FROM indexed_fields")}
        last = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        for name in wanted:
            if name not in known:
                conn.execute("INSERT INTO indexed_fields (field, since_position, backfilled_to) VALUES (?, ?, 0)",
                             (name, last))
        for name in known - set(wanted):
            # no longer kept up to date; its rows stay until it is indexed again (then backfilled)
            conn.execute("DELETE FROM indexed_fields WHERE field = ?", (name,))
            conn.execute("DELETE FROM event_keys WHERE field = ?", (name,))


def field_indexes(conn: sqlite3.Connection) -> list[FieldIndex]:
    rows = conn.execute("SELECT field, since_position, backfilled_to FROM indexed_fields ORDER BY field").fetchall()
    return [FieldIndex(name, backfilled >= since, backfilled, since) for name, since, backfilled in rows]


def reindex(conn: sqlite3.Connection, *, progress: Callable[[int, int], None] | None = None,
            stop: threading.Event | None = None) -> int:
    """Index the events stored before each field was indexed, a step of positions at a time."""
    pending = [index for index in field_indexes(conn) if not index.ready]
    total = sum(index.since_position - index.backfilled_to for index in pending)
    done = 0
    for index in pending:
        low = index.backfilled_to
        while low < index.since_position and not (stop and stop.is_set()):
            high = min(low + REINDEX_STEP, index.since_position)
            # events never change, so what is read before the lock is what the keys are made of
            rows = conn.execute("SELECT position, body FROM events WHERE position > ? AND position <= ?",
                                (low, high)).fetchall()
            keys = [(name, value, position) for position, body in rows
                    for name, value in keys_of(read_json_or_none(body), [index.field])]
            with _Paced(conn):
                conn.executemany(INSERT_KEY, keys)
                conn.execute("UPDATE indexed_fields SET backfilled_to = ? WHERE field = ?", (high, index.field))
            done += high - low
            low = high
            if progress:
                progress(done, total)
    return done


def prune(conn: sqlite3.Connection, before: datetime, *, event_types: tuple[str, ...] | None,
          except_types: tuple[str, ...], stop: threading.Event | None) -> int:
    """Delete events older than `before`, block by block, PRUNE_STEP rows per transaction, with their
    index keys (the delete trigger keeps the tallies exact)."""
    cutoff = to_us(before)
    condition, params = "timestamp_us < ?", [cutoff]
    if event_types is not None:
        condition += f" AND event_type IN ({', '.join('?' * len(event_types))})"
        params += list(event_types)
    if except_types:
        condition += f" AND event_type NOT IN ({', '.join('?' * len(except_types))})"
        params += list(except_types)
    blocks = [row[0] for row in conn.execute(
        "SELECT block FROM time_blocks WHERE events > 0 AND min_ts < ? ORDER BY block", (cutoff,))]
    deleted = 0
    for block in blocks:
        low, high = block << BLOCK_BITS, (block + 1) << BLOCK_BITS
        while not (stop and stop.is_set()):
            # read before the lock; deleting by position twice is harmless (a concurrent prune)
            rows = conn.execute(f"SELECT position, body FROM events WHERE position >= ? AND position < ?"
                                f" AND {condition} LIMIT {PRUNE_STEP}", [low, high, *params]).fetchall()
            if not rows:
                break
            fields = indexed_fields(conn)
            keys = [(name, value, position) for position, body in rows
                    for name, value in keys_of(read_json_or_none(body), fields)]
            with _Paced(conn, PAUSE_PER_HOLD):
                conn.executemany(DELETE_KEY, keys)
                gone = conn.executemany("DELETE FROM events WHERE position = ?",
                                        [(row[0],) for row in rows]).rowcount
            deleted += gone
            if len(rows) < PRUNE_STEP:
                break
        with _Paced(conn):  # what is left of the block: its true smallest timestamp
            conn.execute("UPDATE time_blocks SET min_ts = coalesce((SELECT min(timestamp_us) FROM events"
                         " WHERE position >= ? AND position < ?), min_ts) WHERE block = ?", (low, high, block))
            conn.execute("DELETE FROM time_blocks WHERE block = ? AND events <= 0", (block,))
    if event_types is None and not (stop and stop.is_set()):
        with write_transaction(conn):
            conn.execute("INSERT INTO archive_state (name, value) VALUES ('pruned_before', ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)", (cutoff,))
    return deleted


def span(conn: sqlite3.Connection) -> ArchiveSpan:
    events = conn.execute("SELECT coalesce(sum(count), 0) FROM type_counts").fetchone()[0]
    oldest, newest = conn.execute("SELECT min(min_ts), max(max_ts) FROM time_blocks WHERE events > 0").fetchone()
    pruned = conn.execute("SELECT value FROM archive_state WHERE name = 'pruned_before'").fetchone()
    return ArchiveSpan(events=events, oldest=from_us(oldest) if oldest is not None else None,
                       newest=from_us(newest) if newest is not None else None,
                       pruned_before=from_us(pruned[0]) if pruned else None)
