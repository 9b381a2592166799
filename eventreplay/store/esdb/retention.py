"""Retention on EventStoreDB: what `prune` deleted, and giving the disk space back.

EventStoreDB deletes nothing in place. Its way is stream metadata read by the scavenge: `$tb`
(truncate before an event number) or `$maxAge` on a stream; reads of that *stream* stop returning the
events at once, reads of `$all` keep returning them until a scavenge (`POST /admin/scavenge` on the
server, or the UI's Admin page) has rewritten the chunks, and only the scavenge gives the space back.
The test emulator honours `$tb` in stream reads but implements no scavenge.

So a prune is a *rule*, kept in the private record `retention` and applied by every read of this
store: "events at positions up to P whose timestamp is before T (of these types / but not these)
are deleted" (P: the archive's end when the prune ran, so an old event archived later is not deleted
unseen, as in SQLite). The prune counts what its rule deletes by reading the time blocks that can hold
such events (tally.py: usually one or two per run), adds it to the record's `removed` counts (counts
stay exact without recounting), and records the blocks' surviving figures. Rules of the same kind
with an earlier cutoff are folded into the newest one, so the record stays small.

Then the space: on every routing-key stream `$tb` is moved to the first event no rule deletes. Events
are in arrival order, not timestamp order, and a stream holds several types: an event kept by
`except_types` (or a late one with a recent timestamp) stops the truncation there, and the deleted
events behind it stay on disk (hidden by the rule) until the rule reaches them. Link events of the
indexes are not truncated: a link to a scavenged event resolves to nothing and is skipped.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from esdbclient import EventStoreDBClient
from esdbclient import exceptions as esdb_errors

from eventreplay.store.base import PersistenceError, StoredEvent
from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import archived_event, from_us, to_us, translate
from eventreplay.store.esdb.multi_append import Conflict
from eventreplay.store.esdb.records import Records
from eventreplay.store.esdb.tally import Block, Tally

RETENTION = "retention"
TRUNCATE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Rule:
    before_us: int
    types: tuple[str, ...] | None
    except_types: tuple[str, ...]
    up_to: int
    version: int = -1  # the record version that wrote it

    def deletes(self, position: int, event_type: str, timestamp_us: int) -> bool:
        return (position <= self.up_to and timestamp_us < self.before_us
                and (self.types is None or event_type in self.types) and event_type not in self.except_types)

    def same_kind(self, other: "Rule") -> bool:
        return self.types == other.types and self.except_types == other.except_types

    def covers(self, other: "Rule") -> bool:
        return self.same_kind(other) and self.before_us >= other.before_us and self.up_to >= other.up_to

    def to_json(self) -> dict:
        return {"before": self.before_us, "types": list(self.types) if self.types is not None else None,
                "except": list(self.except_types), "up_to": self.up_to, "v": self.version}

    @classmethod
    def from_json(cls, data: dict) -> "Rule":
        types = tuple(data["types"]) if data["types"] is not None else None
        return cls(data["before"], types, tuple(data["except"]), data["up_to"], data["v"])


@dataclass(frozen=True)
class Retention:
    rules: tuple[Rule, ...] = ()
    removed: dict[str, int] = field(default_factory=dict)
    pruned_before_us: int | None = None
    revision: int | None = None  # of the record; None: nothing was ever pruned

    def deletes(self, position: int, event_type: str, timestamp_us: int) -> bool:
        return any(rule.deletes(position, event_type, timestamp_us) for rule in self.rules)

    def deletes_event(self, event: StoredEvent) -> bool:
        return bool(self.rules) and self.deletes(event.position, event.event_type, to_us(event.timestamp))

    def stale(self, block: Block, *, newest: bool = False) -> bool:
        """May a rule newer than the block's figures have deleted its oldest (newest) event?"""
        edge = block.max_us if newest else block.min_us
        return any(rule.version > block.version and rule.up_to >= block.start and rule.before_us > edge
                   for rule in self.rules)


def current(records: Records) -> Retention:
    record = records.latest(RETENTION)
    if record is None:
        return Retention()
    data = record.data
    return Retention(tuple(Rule.from_json(r) for r in data["rules"]), dict(data["removed"]),
                     data.get("pruned_before"), record.revision)


def survivors(log: LogReader, prefix: str, retention: Retention, block: Block, up_to: int,
              rule: Rule | None = None) -> tuple[Block, Counter[str]]:
    """A block's live figures under the retention (and `rule`), and what `rule` deletes there."""
    low, high, alive = None, None, 0
    deleted: Counter[str] = Counter()
    for recorded in log.scan(after=block.start - 1, until=min(block.end, up_to)):
        stored = archived_event(recorded, prefix)
        if stored is None:
            continue
        stamp = to_us(stored.timestamp)
        if retention.deletes(stored.position, stored.event_type, stamp):
            continue
        if rule is not None and rule.deletes(stored.position, stored.event_type, stamp):
            deleted[stored.event_type] += 1
            continue
        alive += 1
        low = stamp if low is None else min(low, stamp)
        high = stamp if high is None else max(high, stamp)
    return Block(block.number, low or 0, high or 0, alive, block.version), deleted


def prune(records: Records, log: LogReader, tally: Tally, prefix: str, before: datetime, *,
          event_types: tuple[str, ...] | None, except_types: tuple[str, ...],
          stop: threading.Event | None) -> tuple[int, Retention]:
    """Delete (by rule) the events before `before`; returns how many, and the new retention."""
    state = current(records)
    end = tally.position
    rule = Rule(to_us(before), tuple(event_types) if event_types is not None else None, tuple(except_types), end)
    kin = [r for r in state.rules if r.same_kind(rule)]
    with tally.lock:
        blocks = [b for b in tally.blocks() if b.start <= end and b.min_us < rule.before_us]
    deleted_total, scanned_to, stopped = 0, -1, False
    pending: Counter[str] = Counter()
    pending_blocks: list[Block] = []
    for block in blocks:
        if stop is not None and stop.is_set():
            stopped = True
            break
        if any(r.up_to >= block.end and r.before_us > block.max_us for r in kin):
            continue  # everything of this kind in the block is deleted already
        alive, deleted = survivors(log, prefix, state, block, end, rule)
        pending += deleted
        deleted_total += sum(deleted.values())
        pending_blocks.append(alive)
        scanned_to = min(block.end, end)
        if sum(pending.values()) >= 5_000:  # commit now and then: a stop loses little work
            state = _commit(records, tally, state, rule, scanned_to, pending, pending_blocks, final=False)
            pending, pending_blocks = Counter(), []
    if not stopped:
        scanned_to = end
    if scanned_to >= 0:
        final = not stopped and event_types is None
        reached = Rule(rule.before_us, rule.types, rule.except_types, scanned_to)
        if (pending or not any(r.covers(reached) for r in state.rules)
                or final and (state.pruned_before_us is None or state.pruned_before_us < rule.before_us)):
            state = _commit(records, tally, state, rule, scanned_to, pending, pending_blocks, final=final)
    return deleted_total, state


def _commit(records: Records, tally: Tally, state: Retention, rule: Rule, up_to: int, deleted: Counter[str],
            blocks: list[Block], *, final: bool) -> Retention:
    version = 0 if state.revision is None else state.revision + 1
    new = Rule(rule.before_us, rule.types, rule.except_types, up_to, version)
    rules = [r for r in state.rules if not new.covers(r)] + [new]
    removed = Counter(state.removed)
    removed.update(deleted)
    pruned_before = state.pruned_before_us
    if final:
        pruned_before = max(pruned_before or rule.before_us, rule.before_us)
    data = {"rules": [r.to_json() for r in rules], "removed": dict(removed), "pruned_before": pruned_before}
    try:
        records.put(RETENTION, "Retention", data, state.revision, keep=20)
    except Conflict:
        raise PersistenceError("EventStoreDB store: another prune ran at the same time; run it again") from None
    with tally.lock:
        tally.pruned([Block(b.number, b.min_us, b.max_us, b.events, version) for b in blocks])
    return Retention(tuple(rules), dict(removed), pruned_before, version)


def truncate(client: Callable[[], EventStoreDBClient], log_timeout: float, streams: Iterable[str], prefix: str,
             state: Retention, stop: threading.Event | None) -> None:
    """Move `$tb` of each routing-key stream to its first event no rule deletes."""
    if not state.rules:
        return
    for stream in sorted(streams):
        if stop is not None and stop.is_set():
            return
        try:
            _truncate(client(), log_timeout, stream, prefix, state, stop)
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, f"truncating {stream!r}") from None


def _truncate(client: EventStoreDBClient, timeout: float, stream: str, prefix: str, state: Retention,
              stop: threading.Event | None) -> None:
    metadata, version = client.get_stream_metadata(stream, timeout=timeout)
    truncated = int(metadata.get("$tb", 0))
    keep_from = truncated
    start = truncated
    while not (stop is not None and stop.is_set()):
        try:
            chunk = client.get_stream(stream, stream_position=start, limit=TRUNCATE_CHUNK, timeout=timeout)
        except esdb_errors.NotFound:
            return
        for recorded in chunk:
            stored = archived_event(recorded, prefix)
            if stored is None or not state.deletes_event(stored):
                break
            keep_from = recorded.stream_position + 1
        else:
            if len(chunk) == TRUNCATE_CHUNK:
                start = chunk[-1].stream_position + 1
                continue
        break
    if keep_from > truncated:
        client.set_stream_metadata(stream, metadata={**metadata, "$tb": keep_from}, current_version=version,
                                   timeout=timeout)


def edge(tally: Tally, log: LogReader, prefix: str, state: Retention, *, newest: bool) -> datetime | None:
    """The oldest (newest) live timestamp: from the time blocks, re-reading a block whose figures a
    later prune may have made stale (rare: once per block and prune)."""
    while True:
        with tally.lock:
            blocks = list(tally.blocks())
            folded = tally.position
        if not blocks:
            return None
        block = max(blocks, key=lambda b: b.max_us) if newest else min(blocks, key=lambda b: b.min_us)
        if not state.stale(block, newest=newest):
            return from_us(block.max_us if newest else block.min_us)
        alive, _ = survivors(log, prefix, state, block, folded)
        version = state.revision if state.revision is not None else -1
        with tally.lock:
            tally.pruned([Block(alive.number, alive.min_us, alive.max_us, alive.events, version)])
