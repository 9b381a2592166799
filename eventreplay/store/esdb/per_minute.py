"""Events per minute by their timestamp, for the ingest chart, on EventStoreDB.

First call: `$all` read backwards from its end (server-side filtered to this store's archived events,
in chunks) until the server recorded an event before the window began. Why that stop is right: the
log is in the order the server recorded events, so every event further back was recorded earlier
still; an event is recorded when the consumer stores it, at or after its own timestamp (give or take
the clocks' skew, which RECORDED_SLACK absorbs), so none further back has a timestamp in the window.
An import of old events does not hide recent ones: its events are recorded now, and read through.
The scan is capped at MAX_SCANNED events: beyond it (a larger burst in the window) the oldest minutes
count only what was read, the recent ones stay exact.

Then the counts are kept (per store instance) with the log position they are true of, and each call
reads only the events recorded since, forwards: the overview polls every few seconds, and an hour of
events is read once, not per poll. Kept counts are dropped (and the window read again) when the
retention record changes (a prune), when a window starts before what they cover, or when more than
MAX_SCANNED events arrived since the last call.

What it misses: an event recorded more than RECORDED_SLACK before its own timestamp (a producer's
clock far ahead).
"""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import archived_event, to_us
from eventreplay.store.esdb.retention import Retention

MINUTE_US = 60_000_000
RECORDED_SLACK = timedelta(minutes=5)
MAX_SCANNED = 200_000


class MinuteCounts:
    def __init__(self, log: LogReader, prefix: str, *, max_scanned: int = MAX_SCANNED):
        self._log, self._prefix, self._max_scanned = log, prefix, max_scanned
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()  # minute (µs since the epoch // MINUTE_US) -> events
        self._from_minute: int | None = None  # the first minute the counts cover; None: nothing kept
        self._position = 0  # every event up to this commit position is counted
        self._revision: int | None = None  # of the retention record the counts reflect

    def counts(self, retention: Retention, start: datetime, minutes: int) -> list[int]:
        first = to_us(start) // MINUTE_US if to_us(start) % MINUTE_US == 0 else None
        with self._lock:
            if first is None:  # not on a minute boundary: counted on its own, not kept
                return self._scan_back(retention, start, minutes)[0]
            kept = (self._from_minute is not None and first >= self._from_minute
                    and retention.revision == self._revision and self._catch_up(retention))
            if not kept:
                counts, self._position = self._scan_back(retention, start, minutes)
                self._counts = Counter({first + i: n for i, n in enumerate(counts) if n})
                self._from_minute, self._revision = first, retention.revision
            for minute in [m for m in self._counts if m < first]:
                del self._counts[minute]  # left the window: memory stays one window's worth
            self._from_minute = first
            return [self._counts.get(first + i, 0) for i in range(minutes)]

    def _catch_up(self, retention: Retention) -> bool:
        """Fold in the events recorded since; False when there are too many (read the window again)."""
        for scanned, recorded in enumerate(self._log.scan(after=self._position), 1):
            if scanned > self._max_scanned:
                return False
            self._position = recorded.commit_position
            stored = archived_event(recorded, self._prefix)
            if stored is not None and not retention.deletes_event(stored):
                minute = to_us(stored.timestamp) // MINUTE_US
                if minute >= self._from_minute:
                    self._counts[minute] += 1
        return True

    def _scan_back(self, retention: Retention, start: datetime, minutes: int) -> tuple[list[int], int]:
        """The window's counts, and the position of the newest event read (what they are true of)."""
        start_us = to_us(start)
        counts = [0] * minutes
        newest = 0
        stop_at = start - RECORDED_SLACK
        for scanned, recorded in enumerate(self._log.scan(backwards=True), 1):
            newest = max(newest, recorded.commit_position or 0)
            if recorded.recorded_at is not None and recorded.recorded_at < stop_at:
                break
            stored = archived_event(recorded, self._prefix)
            if stored is not None and not retention.deletes_event(stored):
                slot = (to_us(stored.timestamp) - start_us) // MINUTE_US
                if 0 <= slot < minutes:
                    counts[slot] += 1
            if scanned >= self._max_scanned:
                break
        return counts, newest
