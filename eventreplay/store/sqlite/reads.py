"""Reading an EventQuery from SQLite: which rows, by which index, one short statement per page.

- A payload match on an indexed field (archive.py) drives the read through `event_keys`: cost
  O(matches + log n) whatever the archive's size; other conditions join in. The index holds each
  body's fields as Python reads them, so it answers exactly what a scan would.
- Event types walk the (event_type, position) index, one walk per type merged by position.
- Anything else reads rows in position order.
- A time window narrows every one of these to the positions of its time blocks, so it starts at its
  first event instead of the archive's first.
What SQLite cannot decide exactly (match.py) is decided in Python on the rows it returns.
"""
from __future__ import annotations

import heapq
import sqlite3
from itertools import islice
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from eventreplay.store.base import EventQuery, StoredEvent
from eventreplay.store.query import payload_matches
from eventreplay.store.sqlite.archive import BLOCK_BITS, indexable, lookup_value
from eventreplay.store.sqlite.match import MatchPlan
from eventreplay.store.sqlite.sql import COLUMNS, event_of, to_us, translate

PAGE_SIZE = 1000
E_COLUMNS = ", ".join(f"e.{name.strip()}" for name in COLUMNS.split(","))

Connection = Callable[[], sqlite3.Connection]


@dataclass
class _Sql:
    """WHERE clauses over `events e` and their parameters."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)


class QueryPlan:
    def __init__(self, query: EventQuery, conn: Connection, ready_fields: frozenset[str]):
        self.query, self._conn = query, conn
        match = dict(query.match or {})
        self.keys = [(name, lookup_value(value)) for name, value in match.items()
                     if name in ready_fields and indexable(value)]
        rest = {name: value for name, value in match.items() if name not in dict(self.keys)}
        self.match = MatchPlan(rest or None)
        self.python_match = dict(query.match or {})  # the whole match, for rows SQLite cannot read
        self.empty = False
        self.sql = self._conditions()

    # the WHERE ------------------------------------------------------------------------------------
    def _conditions(self) -> _Sql:
        query, sql = self.query, _Sql()
        if query.since is not None:
            sql.add("e.timestamp_us >= ?", to_us(query.since))
        if query.until is not None:
            sql.add("e.timestamp_us < ?", to_us(query.until))
        if query.up_to_position is not None:
            sql.add("e.position <= ?", query.up_to_position)
        bounds = self._window_positions()
        if bounds is not None:
            low, high = bounds
            if low is None:
                self.empty = True
            else:
                sql.add("e.position >= ? AND e.position < ?", low, high)
        clause, params = self.match.where()
        if clause:
            sql.add(clause.replace("body", "e.body"), *params)
        return sql

    def _other_keys(self) -> _Sql:
        """The indexed keys after the first, as conditions on the row the first one found."""
        sql = _Sql()
        for name, value in self.keys[1:]:
            sql.add("EXISTS (SELECT 1 FROM event_keys k WHERE k.field = ? AND k.value = ? AND k.position = e.position)",
                    name, value)
        return sql

    def _window_positions(self) -> tuple[int | None, int] | None:
        """The positions a time window's events lie in, from the time blocks; None without a window,
        (None, 0) when no block can hold one of its events."""
        query = self.query
        if query.since is None and query.until is None:
            return None
        since = to_us(query.since) if query.since is not None else None
        until = to_us(query.until) if query.until is not None else None
        row = self._one(
            "SELECT min(block), max(block) FROM time_blocks WHERE events > 0"
            " AND (? IS NULL OR max_ts >= ?) AND (? IS NULL OR min_ts < ?)", since, since, until, until)
        if row[0] is None:
            return None, 0
        return row[0] << BLOCK_BITS, (row[1] + 1) << BLOCK_BITS

    def _one(self, sql: str, *params: Any):
        try:
            return self._conn().execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise translate(error, "planning a read") from None

    # reading ---------------------------------------------------------------------------------
    def events(self) -> Iterator[StoredEvent]:
        """Every event of the query (its limit aside), in position order."""
        if self.empty or self.query.selects_nothing:
            return iter(())
        if self.keys:
            return self._keyed()
        if self.query.event_types is not None:
            # One ordered index walk per type, merged by position: `type IN (...) ORDER BY position`
            # would sort every remaining row of those types on every page.
            streams = [self._by_type(event_type) for event_type in dict.fromkeys(self.query.event_types)]
            return streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda event: event.position)
        return self._pages("events e", _Sql())

    def _keyed(self) -> Iterator[StoredEvent]:
        name, value = self.keys[0]
        sql = self._other_keys()
        sql.add("k0.field = ? AND k0.value = ?", name, value)
        if self.query.event_types is not None:
            sql.add(f"e.event_type IN ({', '.join('?' * len(self.query.event_types))})", *self.query.event_types)
        return self._pages("event_keys k0 JOIN events e ON e.position = k0.position", sql, cursor="k0.position")

    def _by_type(self, event_type: str) -> Iterator[StoredEvent]:
        sql = _Sql()
        sql.add("e.event_type = ?", event_type)
        return self._pages("events e INDEXED BY events_type_position", sql)

    def _pages(self, source: str, more: _Sql, *, cursor: str = "e.position") -> Iterator[StoredEvent]:
        clauses, fixed = self.sql.clauses + more.clauses, self.sql.params + more.params
        json_ok = "json_valid(CAST(e.body AS TEXT))" if self.match.needed else "1"
        position = self.query.after_position if self.query.after_position is not None else -1
        limit, given = self.query.limit, 0
        while True:
            # a page no bigger than what is still wanted: a 50-event request reads 50 rows, not 1,000
            page = PAGE_SIZE if limit is None else max(1, min(PAGE_SIZE, limit - given))
            statement = (f"SELECT {E_COLUMNS}, {json_ok} FROM {source}"
                         f" WHERE {' AND '.join(clauses + [f'{cursor} > ?'])} ORDER BY {cursor} LIMIT {page}")
            try:
                rows = self._conn().execute(statement, fixed + [position]).fetchall()
            except sqlite3.Error as error:
                raise translate(error, "reading events") from None
            for row in rows:
                if not row[9] and self.match.needed and not payload_matches(row[4], self.python_match):
                    continue  # SQLite could not judge this body; Python did, and said no
                if self.match.python and not payload_matches(row[4], self.match.python):
                    continue
                given += 1
                yield event_of(row)
            if len(rows) < page:
                return
            position = rows[-1][0]

    # counting ---------------------------------------------------------------------------------
    @property
    def reads_everything(self) -> bool:
        """A payload match no index serves: counting means reading every row of the range."""
        return bool(self.query.match) and not self.keys

    def count(self) -> int:
        query = self.query
        if self.empty or query.selects_nothing:
            return 0
        if self.match.python or self.match.needed:
            # json_valid fallbacks and Python-only keys need the rows; counting them streams
            return sum(1 for _ in islice(self.events(), query.limit))
        if self.keys:
            name, value = self.keys[0]
            sql = self._other_keys()
            sql.add("k0.field = ? AND k0.value = ?", name, value)
            if query.event_types is not None:
                sql.add(f"e.event_type IN ({', '.join('?' * len(query.event_types))})", *query.event_types)
            return self._count_sql("event_keys k0 JOIN events e ON e.position = k0.position", sql,
                                      cursor="k0.position")
        tallied = self._from_tallies()
        if tallied is not None:
            return _at_most(tallied, query.limit)
        sql = _Sql()
        if query.event_types is not None:
            sql.add(f"e.event_type IN ({', '.join('?' * len(query.event_types))})", *query.event_types)
        return self._count_sql("events e", sql)

    def _count_sql(self, source: str, more: _Sql, *, cursor: str = "e.position") -> int:
        clauses, params = self.sql.clauses + more.clauses, self.sql.params + more.params
        if self.query.after_position is not None:
            clauses, params = clauses + [f"{cursor} > ?"], params + [self.query.after_position]
        inner = f"SELECT 1 FROM {source}" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        if self.query.limit is not None:
            inner += f" LIMIT {int(self.query.limit)}"
        return self._one(f"SELECT count(*) FROM ({inner})", *params)[0]

    def _from_tallies(self) -> int | None:
        """Types alone (up to a position at most): the per-type tallies, minus the few events
        stored after that position. None when the query asks for more than the tallies know."""
        query = self.query
        if query.since is not None or query.until is not None or query.match or query.after_position is not None:
            return None
        types = tuple(dict.fromkeys(query.event_types)) if query.event_types is not None else None
        where = f" WHERE event_type IN ({', '.join('?' * len(types))})" if types else ""
        total = self._one(f"SELECT coalesce(sum(count), 0) FROM type_counts{where}", *(types or ()))[0]
        if query.up_to_position is not None:
            tail = f"SELECT count(*) FROM events WHERE position > ?" + (
                f" AND event_type IN ({', '.join('?' * len(types))})" if types else "")
            total -= self._one(tail, query.up_to_position, *(types or ()))[0]
        return total


def _at_most(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)
