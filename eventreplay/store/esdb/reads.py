"""Reading and counting an EventQuery on EventStoreDB: which path serves it.

- A payload match on a ready indexed field (links.py) reads that field's key stream: O(matches).
  Counting needs no event at all when every matched field is indexed: the links' metadata (position,
  type, timestamp) decides types, window, bounds and retention.
- Types alone (up to a position at most): the tally (tally.py) minus what the retention removed,
  minus the events after that position.
- Anything else scans `$all`, filtered server-side by type, from the first time block that can hold
  an event of the time window to the last.
Every event read is checked against the retention rules (retention.py) and the whole query in Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterator

from esdbclient import EventStoreDBClient

from eventreplay.store.base import EventQuery, StoredEvent
from eventreplay.store.esdb.links import KeyStream, key_stream, key_value
from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import archived_event, to_us
from eventreplay.store.esdb.retention import Retention
from eventreplay.store.esdb.tally import Tally


@dataclass
class Sources:
    """What a plan reads from (the store hands these in)."""

    client: Callable[[], EventStoreDBClient]
    log: LogReader
    prefix: str
    timeout: float
    retention: Retention
    ready_fields: frozenset[str]
    tally: Callable[[], Tally]  # brought up to date, loaded on first use


class Plan:
    def __init__(self, query: EventQuery, sources: Sources):
        self.query, self.src = query, sources
        match = dict(query.match or {})
        self.keys = [(name, key_value(value)) for name, value in match.items()
                     if name in sources.ready_fields and key_value(value) is not None]
        self.only_keys = bool(self.keys) and len(self.keys) == len(match)

    @property
    def reads_everything(self) -> bool:
        return bool(self.query.match) and not self.keys

    # reading -------------------------------------------------------------------------------------
    def events(self) -> Iterator[StoredEvent]:
        if self.query.selects_nothing:
            return iter(())
        return self._keyed() if self.keys else self._scanned()

    def _keep(self, stored: StoredEvent | None, *, check: bool) -> bool:
        query = self.query
        if stored is None:
            return False
        if query.after_position is not None and stored.position <= query.after_position:
            return False
        if query.up_to_position is not None and stored.position > query.up_to_position:
            return False
        if query.event_types is not None and stored.event_type not in query.event_types:
            return False
        if self.src.retention.deletes_event(stored):
            return False
        return not check or query.matches(stored)

    def _key_stream(self, name: str, value) -> KeyStream:
        return KeyStream(self.src.client, key_stream(self.src.prefix, name, value), self.src.timeout)

    def _keyed(self) -> Iterator[StoredEvent]:
        stream = self._key_stream(*self.keys[0])
        runs = stream.runs(after=self.query.after_position, up_to=self.query.up_to_position)
        if not runs:
            return
        for recorded in stream.events(runs):
            stored = archived_event(recorded, self.src.prefix)
            if self._keep(stored, check=True):
                yield stored

    def _scanned(self) -> Iterator[StoredEvent]:
        query = self.query
        bounds = self._bounds()
        if bounds is None:
            return
        after, until = bounds
        check = query.since is not None or query.until is not None or bool(query.match)
        for recorded in self.src.log.scan(after=after, until=until, event_types=query.event_types):
            stored = archived_event(recorded, self.src.prefix)
            if self._keep(stored, check=check):
                yield stored

    def _bounds(self) -> tuple[int | None, int | None] | None:
        """The positions to scan: the query's, from the archive's first time block (a shared server's
        log may hold much else before it), narrowed to the blocks of its time window; None when no
        block can hold an event of the window."""
        query = self.query
        after, until = query.after_position, query.up_to_position
        since_us = to_us(query.since) if query.since is not None else None
        until_us = to_us(query.until) if query.until is not None else None
        tally = self.src.tally()
        with tally.lock:
            blocks = [b for b in tally.blocks()
                      if (since_us is None or b.max_us >= since_us) and (until_us is None or b.min_us < until_us)]
            folded = tally.position
        if not blocks:
            # nothing folded can match; what arrived since the tally looked is after `folded`
            return (max(after or 0, folded), until) if until_us is None else None
        low = blocks[0].start - 1
        after = low if after is None else max(after, low)
        if until_us is not None:
            high = blocks[-1].end
            until = high if until is None else min(until, high)
        return after, until

    # counting ------------------------------------------------------------------------------------
    def count(self) -> int:
        query = self.query
        if query.selects_nothing:
            return 0
        if self.only_keys:
            return _at_most(self._count_links(), query.limit)
        if not self.keys and not query.match and query.since is None and query.until is None \
                and query.after_position is None:
            return _at_most(self._count_tally(), query.limit)
        return sum(1 for _ in islice(self.events(), query.limit))

    def _count_links(self) -> int:
        query, retention = self.query, self.src.retention
        since_us = to_us(query.since) if query.since is not None else None
        until_us = to_us(query.until) if query.until is not None else None
        found: set[int] | None = None
        for name, value in self.keys:
            positions = set()
            for link in self._key_stream(name, value).links():
                p, t, u = link.position, link.event_type, link.timestamp_us
                if (query.after_position is not None and p <= query.after_position
                        or query.up_to_position is not None and p > query.up_to_position
                        or query.event_types is not None and t not in query.event_types
                        or since_us is not None and u < since_us or until_us is not None and u >= until_us
                        or retention.deletes(p, t, u)):
                    continue
                if found is None or p in found:
                    positions.add(p)
            found = positions
            if not found:
                return 0
        return len(found or ())

    def _count_tally(self) -> int:
        query, removed = self.query, self.src.retention.removed
        tally = self.src.tally()
        with tally.lock:
            counts = dict(tally.counts)
            folded = tally.position
        types = set(query.event_types) if query.event_types is not None else set(counts)
        total = sum(max(counts.get(t, 0) - removed.get(t, 0), 0) for t in types)
        if query.up_to_position is not None and query.up_to_position < folded:
            # the events after that position, which the tally holds too
            later = EventQuery(event_types=query.event_types, after_position=query.up_to_position,
                               up_to_position=folded)
            total -= sum(1 for _ in Plan(later, self.src)._scanned())
        return total


def _at_most(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)
