"""Events per minute by their timestamp, for the ingest chart: one statement, one snapshot, that
counts each minute's range of the `events_timestamp` index (a seek, then a walk of that range's
entries; the index holds timestamp_us alone, so no row is read). The cost is the window's events,
whatever the archive's size: 300,000 events in the last hour of a 1,000,000-event archive, about
30 ms (a GROUP BY over the same range sorts in a temporary B-tree: about 190 ms)."""
from __future__ import annotations

import sqlite3
from datetime import datetime

from eventreplay.store.sqlite.sql import to_us

MINUTE_US = 60_000_000

_COUNT = """
WITH RECURSIVE slots(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slots WHERE i < :minutes - 1)
SELECT (SELECT count(*) FROM events INDEXED BY events_timestamp
        WHERE timestamp_us >= :start + i * :minute AND timestamp_us < :start + (i + 1) * :minute)
FROM slots
"""


def counts_per_minute(conn: sqlite3.Connection, start: datetime, minutes: int) -> list[int]:
    rows = conn.execute(_COUNT, {"minutes": minutes, "start": to_us(start), "minute": MINUTE_US})
    return [row[0] for row in rows]
