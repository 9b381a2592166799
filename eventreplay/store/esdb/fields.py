"""Which indexes exist and how far each covers the archive: the private record `index-fields`,
and `reindex`, which backfills them.

Record: `{"fields": {name: {"since": P, "backfilled_to": B}}, "ids": {"since": P, "backfilled_to": B}}`.
Events after `since` are indexed by the writer that stores them; those up to it by `reindex`, which
has done the positions up to `backfilled_to`; ready = B >= P. A field added by index_fields gets
`since: null`, read as the record's own commit position: an appender reads this record *after* its
events are stored, so an event after the record is always indexed by its writer, and the backfill
covers everything before it, whichever process wrote it. The id index (ids.py) has the same two
marks: an archive written before this version gets its id streams from `reindex` too.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from esdbclient import StreamState

from eventreplay.store.base import FieldIndex, PersistenceError
from eventreplay.store.esdb.ids import IdIndex
from eventreplay.store.esdb.links import Linked, key_links
from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import archived_event, to_us, translate
from eventreplay.store.esdb.multi_append import Conflict, Write, append_many
from eventreplay.store.esdb.records import Records

FIELDS = "index-fields"
IDS = "<ids>"  # the id index among the entries (no payload field has this name: it is not JSON-ish)
REINDEX_STEP = 2_000  # events per step: links in one call, then the progress record


@dataclass(frozen=True)
class Coverage:
    entries: dict[str, tuple[int, int]]  # name (or IDS) -> (since, backfilled_to)
    revision: int | None

    @property
    def fields(self) -> list[str]:
        return sorted(name for name in self.entries if name != IDS)

    def ready(self, name: str) -> bool:
        since, done = self.entries.get(name, (1, 0))
        return done >= since

    @property
    def ready_fields(self) -> frozenset[str]:
        return frozenset(name for name in self.fields if self.ready(name))

    def to_json(self) -> dict:
        fields = {n: {"since": s, "backfilled_to": b} for n, (s, b) in self.entries.items() if n != IDS}
        since, done = self.entries.get(IDS, (0, 0))
        return {"fields": fields, "ids": {"since": since, "backfilled_to": done}}


def read(records: Records) -> Coverage | None:
    record = records.latest(FIELDS)
    if record is None:
        return None
    at = record.position
    entries = {name: (e["since"] if e["since"] is not None else at, e["backfilled_to"])
               for name, e in record.data["fields"].items()}
    ids = record.data["ids"]
    entries[IDS] = (ids["since"] if ids["since"] is not None else at, ids["backfilled_to"])
    return Coverage(entries, record.revision)


def change(records: Records, wanted: Sequence[str] | None, archive_empty: Callable[[], bool]) -> Coverage:
    """Create the record (wanted None: as it is, or with no field) or set the indexed fields; new
    entries start at the record's position, ready at once when the archive held nothing then."""
    while True:
        known = read(records)
        entries = dict(known.entries) if known else {}
        names = set(wanted) if wanted is not None else {n for n in entries if n != IDS}
        fresh = [n for n in names if n not in entries] + ([IDS] if IDS not in entries else [])
        if known is not None and not fresh and names == {n for n in entries if n != IDS}:
            return known
        data = {"fields": {n: ({"since": entries[n][0], "backfilled_to": entries[n][1]} if n in entries
                               else {"since": None, "backfilled_to": 0}) for n in sorted(names)},
                "ids": ({"since": entries[IDS][0], "backfilled_to": entries[IDS][1]} if IDS in entries
                        else {"since": None, "backfilled_to": 0})}
        try:
            records.put(FIELDS, "IndexedFields", data, known.revision if known else None, keep=20)
        except Conflict:
            continue  # another process changed it: start from theirs
        written = read(records)
        if fresh and archive_empty():
            # nothing archived before the record: nothing to backfill
            ready = dict(written.entries)
            for name in fresh:
                since, _ = ready[name]
                ready[name] = (since, since)
            try:
                records.put(FIELDS, "IndexedFields", Coverage(ready, None).to_json(), written.revision, keep=20)
            except Conflict:
                continue
            written = read(records)
        return written


def field_indexes(coverage: Coverage | None) -> list[FieldIndex]:
    if coverage is None:
        return []
    return [FieldIndex(name, coverage.ready(name), coverage.entries[name][1], coverage.entries[name][0])
            for name in coverage.fields]


def reindex(records: Records, log: LogReader, ids: IdIndex, client, prefix: str, timeout: float, *,
            progress: Callable[[int, int], None] | None, stop: threading.Event | None) -> int:
    """Backfill every entry not ready, entries with the same range together, a step at a time."""
    coverage = read(records)
    if coverage is None:
        return 0
    groups: dict[tuple[int, int], list[str]] = {}
    for name, (since, done) in coverage.entries.items():
        if done < since:
            groups.setdefault((done, since), []).append(name)
    total = sum(since - done for done, since in groups)
    advanced, indexed = 0, 0
    for (done, since), names in sorted(groups.items()):
        low = done
        while low < since and not (stop is not None and stop.is_set()):
            batch, high = [], since
            for recorded in log.scan(after=low, until=since):
                stored = archived_event(recorded, prefix)
                if stored is not None:
                    batch.append((stored.event_id, Linked(stored.position, recorded.stream_position,
                                                          recorded.stream_name, stored.event_type,
                                                          to_us(stored.timestamp), stored.body)))
                if len(batch) >= REINDEX_STEP:
                    high = recorded.commit_position
                    break
            _link(client, timeout, ids, prefix, batch, names)
            _advance(records, names, high)
            indexed += len(batch)
            advanced += high - low
            low = high
            if progress:
                progress(advanced, total)
    return indexed


def _link(client, timeout: float, ids: IdIndex, prefix: str, batch: list[tuple[str, Linked]], names: list[str]) -> None:
    fields = [n for n in names if n != IDS]
    writes = [Write(stream, StreamState.ANY, links)
              for stream, links in key_links(prefix, (t for _, t in batch), fields).items()]
    if IDS in names:
        writes += ids.link_writes(batch)
    try:
        results = append_many(client(), writes, timeout)
    except PersistenceError:
        raise
    except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
        raise translate(error, "writing index links") from None
    for write, result in zip(writes, results):
        if isinstance(result, Exception):
            raise translate(result, f"writing index links to {write.stream!r}")


def _advance(records: Records, names: list[str], high: int) -> None:
    while True:
        coverage = read(records)
        entries = dict(coverage.entries)
        for name in names:
            if name in entries:
                since, done = entries[name]
                entries[name] = (since, max(done, min(high, since)))
        try:
            records.put(FIELDS, "IndexedFields", Coverage(entries, None).to_json(), coverage.revision, keep=20)
            return
        except Conflict:
            continue
