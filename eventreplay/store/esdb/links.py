"""Payload-field indexes the EventStoreDB way: link events.

For every indexed field (index_fields) and every archived event whose payload has that field with an
indexable value, a link event (type `$>`, data `"{revision}@{stream}"`, EventStoreDB's own link
format) goes into one private stream per (field, value): `{prefix}eventreplay-key-["order_id","o-1"]`.
A match reads that stream with `resolve_links=True`: cost O(matches), whatever the archive's size.

- Values: strings, booleans and numbers that Python's `==` and a stream name can agree on. The
  stream name is the JSON text of [field, value] with booleans and integral floats spelled as the
  integer Python equates them with (True == 1 == 1.0), so "1" and 1 stay apart and a match finds
  exactly what `==` finds. Integers (and integral floats) beyond +-2**53 are not indexed: they are
  found by a scan. Names longer than MAX_NAME characters are replaced by a SHA-256 of that text; a
  collision costs a Python check, never a wrong answer (every event read is checked in Python).
- Link metadata carries the target's commit position, type and timestamp (`{"p", "t", "u"}`), so a
  count, a type, a time window or a position bound is decided without resolving the link.
- Order: links are appended as their events are stored, but a backfill (reindex) or two writers
  appending at once put some links out of position order. A read first walks the links (small) and
  cuts the stream into runs of rising positions, then reads each run resolved and merges the runs by
  position (duplicates, from a retried link write, dropped): memory O(runs x chunk).
"""
from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from esdbclient import EventStoreDBClient
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.events import RecordedEvent

from eventreplay.store.base import PersistenceError
from eventreplay.store.esdb.mapping import private_stream, translate

SAFE_INT = 2**53
MAX_NAME = 200
LINK_TYPE = "$>"


def key_value(value: Any) -> int | float | str | None:
    """The value under which an index keeps (and finds) `value`, or None when it is not indexed."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -SAFE_INT < value < SAFE_INT else None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        if value.is_integer():
            return int(value) if -SAFE_INT < value < SAFE_INT else None
        return value  # a fraction equals no integer, no string: its own key
    if isinstance(value, str):
        return value
    return None


def key_stream(prefix: str, field: str, value: int | float | str) -> str:
    text = json.dumps([field, value], separators=(",", ":"))
    if len(text) > MAX_NAME:
        text = "#" + hashlib.sha256(text.encode()).hexdigest()
    return private_stream(prefix, "key-" + text)


@dataclass(frozen=True, slots=True)
class Linked:
    """An archived event as a link target."""

    position: int
    revision: int
    stream: str
    event_type: str
    timestamp_us: int
    body: bytes


def link_event(target: Linked) -> ESDBNewEvent:
    meta = {"p": target.position, "t": target.event_type, "u": target.timestamp_us}
    return ESDBNewEvent(type=LINK_TYPE, data=f"{target.revision}@{target.stream}".encode(),
                        metadata=json.dumps(meta, separators=(",", ":")).encode(),
                        content_type="application/octet-stream")


def key_links(prefix: str, targets: Iterable[Linked], fields: Iterable[str]) -> dict[str, list[ESDBNewEvent]]:
    """Link events per key stream for these events and fields, in position order."""
    wanted = list(fields)
    by_stream: dict[str, list[tuple[int, ESDBNewEvent]]] = {}
    if not wanted:
        return {}
    for target in targets:
        try:
            payload = json.loads(target.body)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        for name in wanted:
            if name in payload:
                value = key_value(payload[name])
                if value is not None:
                    by_stream.setdefault(key_stream(prefix, name, value), []).append((target.position, link_event(target)))
    return {stream: [e for _, e in sorted(links, key=lambda item: item[0])] for stream, links in by_stream.items()}


@dataclass(frozen=True, slots=True)
class Link:
    revision: int
    position: int
    event_type: str
    timestamp_us: int


class KeyStream:
    """Reading one key stream: its links (pass 1), then its events in position order (pass 2)."""

    def __init__(self, client: Callable[[], EventStoreDBClient], stream: str, timeout: float, chunk: int = 500):
        self._client, self.stream, self._timeout, self._chunk = client, stream, timeout, chunk

    def _get(self, start: int, limit: int, resolve: bool) -> tuple[RecordedEvent, ...]:
        try:
            return self._client().get_stream(self.stream, stream_position=start, limit=limit, resolve_links=resolve,
                                             timeout=self._timeout)
        except esdb_errors.NotFound:
            return ()
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, f"reading the index stream {self.stream!r}") from None

    def links(self) -> Iterator[Link]:
        start = 0
        while True:
            chunk = self._get(start, self._chunk, False)
            for recorded in chunk:
                try:
                    meta = json.loads(recorded.metadata)
                    yield Link(recorded.stream_position, int(meta["p"]), meta["t"], int(meta["u"]))
                except (ValueError, KeyError, TypeError):
                    continue  # not one of ours
            if len(chunk) < self._chunk:
                return
            start = chunk[-1].stream_position + 1

    def runs(self, *, after: int | None = None, up_to: int | None = None) -> list[tuple[int, int]]:
        """(first, last) revisions of the runs of rising positions, trimmed to (after, up_to]."""
        runs: list[tuple[int, int]] = []
        first = last = None
        previous = -1
        for link in self.links():
            if link.position <= previous and first is not None:
                runs.append((first, last))
                first = last = None
            previous = link.position
            if (after is None or link.position > after) and (up_to is None or link.position <= up_to):
                if first is None:
                    first = link.revision
                last = link.revision
        if first is not None:
            runs.append((first, last))
        return runs

    def _run(self, first: int, last: int) -> Iterator[RecordedEvent]:
        start = first
        while start <= last:
            limit = min(self._chunk, last - start + 1)
            yield from self._get(start, limit, True)  # links to truncated events come back empty: skipped
            start += limit

    def events(self, runs: list[tuple[int, int]]) -> Iterator[RecordedEvent]:
        """The resolved events of the runs, merged by commit position, each once."""
        streams = [self._run(first, last) for first, last in runs]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r.commit_position)
        previous = None
        for recorded in merged:
            if recorded.commit_position != previous:
                previous = recorded.commit_position
                yield recorded
