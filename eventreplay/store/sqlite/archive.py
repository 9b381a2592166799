"""What keeps a big SQLite archive fast: tables kept exact in the same transaction as every insert
and delete, whoever writes (the consumer, an import, a copy).

- `type_counts`: events per type, so counting by type costs O(types) (SQLite triggers).
- `time_blocks`: the smallest and largest timestamp of every block of 4,096 positions, so a time
  window starts reading at its first block instead of at the archive's first event (triggers).
- `event_keys`: (field, value, position) for the top-level payload fields named by INDEXED_FIELDS
  (`order_id`, ...), so one order's history is read in O(its events + log n). The store fills it
  from each body as Python reads it (the same reading as a scan's payload match, so both give the
  same answer), and `indexed_fields` says since which position each field is indexed at insert
  and how far `reindex` has indexed the events stored before.
- `archive_state`: what retention pruned.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Iterable

BLOCK_BITS = 12  # 4,096 positions per time block

TABLES = f"""
CREATE TABLE IF NOT EXISTS type_counts (event_type TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS time_blocks (
    block INTEGER PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL, events INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS event_keys (
    field TEXT NOT NULL, value NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (field, value, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexed_fields (
    field TEXT PRIMARY KEY, since_position INTEGER NOT NULL, backfilled_to INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_state (name TEXT PRIMARY KEY, value) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS events_tallied AFTER INSERT ON events BEGIN
    INSERT INTO type_counts (event_type, count) VALUES (new.event_type, 1)
        ON CONFLICT (event_type) DO UPDATE SET count = count + 1;
    INSERT INTO time_blocks (block, min_ts, max_ts, events)
        VALUES (new.position >> {BLOCK_BITS}, new.timestamp_us, new.timestamp_us, 1)
        ON CONFLICT (block) DO UPDATE SET min_ts = min(min_ts, excluded.min_ts),
            max_ts = max(max_ts, excluded.max_ts), events = events + 1;
END;
CREATE TRIGGER IF NOT EXISTS events_untallied AFTER DELETE ON events BEGIN
    UPDATE type_counts SET count = count - 1 WHERE event_type = old.event_type;
    UPDATE time_blocks SET events = events - 1 WHERE block = old.position >> {BLOCK_BITS};
END;
"""

INSERT_KEY = "INSERT OR IGNORE INTO event_keys (field, value, position) VALUES (?, ?, ?)"
DELETE_KEY = "DELETE FROM event_keys WHERE field = ? AND value = ? AND position = ?"

# The values an index holds and a lookup may use: Python's == and SQLite's = agree on them (a JSON
# true is 1 in both); integers beyond 2**53, floats and null are read by scan.
_SAFE_INT = 2**53


def indexable(value: object) -> bool:
    """May a match on this value be served by the index?"""
    if isinstance(value, str):
        return True
    return isinstance(value, int) and -_SAFE_INT < value < _SAFE_INT  # bool included: True == 1


def lookup_value(value: object) -> object:
    return int(value) if isinstance(value, bool) else value


def keys_of(payload: Any, fields: Iterable[str]) -> list[tuple[str, object]]:
    """(field, value) of a parsed body's indexed fields (none when the body is no JSON object)."""
    if not isinstance(payload, dict):
        return []
    return [(name, lookup_value(payload[name])) for name in fields
            if name in payload and indexable(payload[name])]


def ready_fields(conn: sqlite3.Connection) -> frozenset[str]:
    return frozenset(row[0] for row in conn.execute(
        "SELECT field FROM indexed_fields WHERE backfilled_to >= since_position"))


def indexed_fields(conn: sqlite3.Connection) -> tuple[str, ...]:
    """Every field kept up to date at insert (ready or still being backfilled)."""
    return tuple(row[0] for row in conn.execute("SELECT field FROM indexed_fields ORDER BY field"))


def tally_existing(conn: sqlite3.Connection) -> None:
    """Fill the tallies from the events an archive of an earlier version already holds (once; in the
    transaction that created the triggers, so nothing is counted twice or missed)."""
    if conn.execute("SELECT 1 FROM archive_state WHERE name = 'tallied'").fetchone():
        return
    conn.execute("DELETE FROM type_counts")
    conn.execute("INSERT INTO type_counts SELECT event_type, count(*) FROM events GROUP BY event_type")
    conn.execute("DELETE FROM time_blocks")
    conn.execute(f"INSERT INTO time_blocks SELECT position >> {BLOCK_BITS}, min(timestamp_us), max(timestamp_us),"
                 f" count(*) FROM events GROUP BY position >> {BLOCK_BITS}")
    conn.execute("INSERT INTO archive_state (name, value) VALUES ('tallied', 1)")
