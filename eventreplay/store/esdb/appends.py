"""Appending a batch to EventStoreDB: deduplication (the recent-id window, then the id index's
claims), the events themselves (one atomic append per routing-key stream, all in one call), reading
them back for their positions, and their links (key streams, then id streams; one call each).

A failure anywhere raises (StoreUnavailable for outages): the caller retries the whole batch, and
what the failed attempt did is recognised on the retry: stored events are in the window (their
missing links are written then: `_repair`), claims without an event are claimed over (ids.py).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, Sequence

from esdbclient import StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient.events import RecordedEvent

from eventreplay.store.base import NewEvent, PersistenceError, StoreUnavailable
from eventreplay.store.esdb import fields, retention
from eventreplay.store.esdb.links import Linked, key_links
from eventreplay.store.esdb.mapping import (
    MAX_APPEND_BYTES, archived_event, server_filters, stream_for, to_esdb, to_us, translate, weight,
)
from eventreplay.store.esdb.multi_append import POOL, Conflict, Write, append_many

# A bare claim younger than this is taken for another writer's append in progress (the append
# answers StoreUnavailable: retry); older, for the leftover of a writer that failed or crashed.
IN_FLIGHT_S = 30.0

if TYPE_CHECKING:
    from eventreplay.store.esdb.store import EventStoreDBEventStore


def linked(recorded: RecordedEvent, event_id: str) -> tuple[str, Linked] | None:
    stored = archived_event(recorded, "")
    if stored is None:
        return None
    return event_id, Linked(recorded.commit_position, recorded.stream_position, recorded.stream_name,
                            stored.event_type, to_us(stored.timestamp), stored.body)


class Appender:
    def __init__(self, store: "EventStoreDBEventStore"):
        self._store = store
        self._coverage_exists = False
        self._own_claims: set[str] = set()  # claimed by this instance, not linked yet

    def append(self, prepared: list[tuple[str, NewEvent]]) -> int:
        store = self._store
        window = store._window
        store._follow(window=True)
        if not self._coverage_exists:  # the index record, created by the first append of a store
            fields.change(store._records, None, store._archive_empty)
            self._coverage_exists = True
        fresh: list[tuple[str, NewEvent]] = []
        hits: list[str] = []
        seen: set[str] = set()
        for event_id, event in prepared:
            if event_id in seen:
                continue
            seen.add(event_id)
            if event_id in window:
                hits.append(event_id)
            else:
                fresh.append((event_id, event))
        owned, unlinked = self._claim(fresh)
        new_ids = self._store_events(owned)
        found = store._follow(window=True, collect=new_ids)
        coverage = fields.read(store._records)  # after the events are stored: fields.py says why
        wanted = coverage.fields if coverage else []
        targets = [t for event_id, (recorded, _) in found.items() if (t := linked(recorded, event_id))]
        targets += [t for event_id, recorded in unlinked if (t := linked(recorded, event_id))]
        self._link(targets, wanted)
        if hits:
            self._repair(hits, wanted)
        self._own_claims.difference_update(event_id for event_id, _ in targets)
        store._appended = True
        with store._tally.lock:
            store._tally.save()
        return len(new_ids)

    # deduplication ---------------------------------------------------------------------------
    def _claim(self, fresh: list[tuple[str, NewEvent]]
               ) -> tuple[list[tuple[str, NewEvent]], list[tuple[str, RecordedEvent]]]:
        """The events this append may store (their ids claimed), and ids found stored but not linked."""
        if not fresh:
            return [], []
        store = self._store
        streams = {event_id: stream_for(store._prefix, event.routing_key) for event_id, event in fresh}
        claimed = store._ids.claim((event_id, streams[event_id], None) for event_id, _ in fresh)
        self._own_claims.update(event_id for event_id, ok in claimed.items() if ok)
        taken = [event_id for event_id, ok in claimed.items() if not ok]
        unlinked: list[tuple[str, RecordedEvent]] = []
        if taken:
            state = retention.current(store._records)
            again = []
            for event_id in taken:
                verdict = self._known(event_id, state)
                if verdict == "stored":
                    continue
                if isinstance(verdict, RecordedEvent):
                    unlinked.append((event_id, verdict))
                    continue
                again.append((event_id, streams[event_id], verdict))
            again_claimed = store._ids.claim(again)
            self._own_claims.update(event_id for event_id, ok in again_claimed.items() if ok)
            claimed.update(again_claimed)
        return [(event_id, event) for event_id, event in fresh if claimed[event_id]], unlinked

    def _known(self, event_id: str, state: retention.Retention):
        """An id whose claim failed: "stored", the stored event (when its links are missing), or
        the revision to claim it over (the event is not, or no longer, stored)."""
        ids, window = self._store._ids, self._store._window
        last = ids.last(event_id)
        if last is None:
            return StreamState.NO_STREAM
        if ids.is_link(last):
            target = ids.target(last)
            stored = archived_event(target, self._store._prefix) if target is not None else None
            if stored is not None and stored.event_id == event_id and not state.deletes_event(stored):
                return "stored"
            return last.stream_position
        # a bare claim: a writer failed (or is still busy) between claiming and linking
        if event_id not in self._own_claims and last.recorded_at is not None:
            age = (datetime.now(timezone.utc) - last.recorded_at).total_seconds()
            if age < IN_FLIGHT_S:  # another writer is storing it now, most likely: ask for a retry
                raise StoreUnavailable(f"EventStoreDB store: event {event_id} is being stored by another writer"
                                       f" (claimed {max(age, 0):.0f} s ago); retry the batch")
        if window.covers(last.commit_position or 0):
            return last.stream_position  # not in the window, so not stored
        recorded = ids.after_claim(last, event_id)
        if recorded is not None:
            return recorded
        return last.stream_position

    # the events -------------------------------------------------------------------------------
    def _store_events(self, owned: list[tuple[str, NewEvent]]) -> set[str]:
        store = self._store
        by_stream: dict[str, list[tuple[str, ESDBNewEvent]]] = {}
        for event_id, event in owned:
            by_stream.setdefault(stream_for(store._prefix, event.routing_key), []).append((event_id, to_esdb(event, event_id)))
        parts = [(stream, part) for stream, items in by_stream.items() for part in _parts(items)]
        if not parts:
            return set()
        try:
            results = append_many(store.client(), [Write(s, StreamState.ANY, [e for _, e in p]) for s, p in parts],
                                  store._timeout)
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, f"appending {len(owned)} events") from None
        stored: set[str] = set()
        failure = None
        for (stream, part), result in zip(parts, results):
            if isinstance(result, Conflict):
                stored.update(self._one_by_one(stream, part))
            elif isinstance(result, Exception):
                failure = failure or translate(result, f"appending {len(part)} events to {stream!r}")
            else:
                stored.update(event_id for event_id, _ in part)
        for event_id in stored:
            store._window.remember(event_id, None)
        if failure is not None:
            raise failure  # the parts stored are in the window: the retry stores exactly the rest
        return stored

    def _one_by_one(self, stream: str, part: list[tuple[str, ESDBNewEvent]]) -> set[str]:
        # EventStoreDB took some of these ids for re-sent events (its own idempotency cache): a
        # single-event ANY append of such an id returns that event's position without writing.
        client, store = self._store.client(), self._store
        known_until = store._window.hwm
        new = set()
        for event_id, event in part:
            try:
                position = client.append_to_stream(stream, current_version=StreamState.ANY, events=event,
                                                   timeout=store._timeout)
            except Exception as error:  # noqa: BLE001
                raise translate(error, f"appending event {event_id} to {stream!r}") from None
            if position > known_until:
                new.add(event_id)
        return new

    # the links --------------------------------------------------------------------------------
    def _link(self, targets: list[tuple[str, Linked]], wanted: Sequence[str]) -> None:
        """Key links first, id links last: an id stream ending in a link means all links are there."""
        store = self._store
        keys = [Write(stream, StreamState.ANY, links)
                for stream, links in key_links(store._prefix, (t for _, t in targets), wanted).items()]
        for writes in (keys, store._ids.link_writes(targets)):
            try:
                results = append_many(store.client(), writes, store._timeout)
            except PersistenceError:
                raise
            except Exception as error:  # noqa: BLE001
                raise translate(error, "writing index links") from None
            for write, result in zip(writes, results):
                if isinstance(result, Exception):
                    raise translate(result, f"writing index links to {write.stream!r}")

    def _repair(self, hits: list[str], wanted: Sequence[str]) -> None:
        """Re-sent events found in the window: link those whose links a failed append left out."""
        store = self._store
        lasts = list(POOL.map(store._ids.last, hits))
        targets = []
        for event_id, last in zip(hits, lasts):
            if last is not None and store._ids.is_link(last):
                continue
            position = store._window.position_of(event_id)
            if position is None:
                continue
            filters = server_filters(store._prefix, None)
            for recorded in store._log.chunk(position=position, backwards=False, filters=filters, limit=1):
                if str(recorded.id) == event_id and (target := linked(recorded, event_id)):
                    targets.append(target)
        self._link(targets, wanted)


def _parts(items: list[tuple[str, ESDBNewEvent]]) -> Iterator[list[tuple[str, ESDBNewEvent]]]:
    """Appends under EventStoreDB's size limit (each part is atomic on its own)."""
    part: list[tuple[str, ESDBNewEvent]] = []
    size = 0
    for event_id, converted in items:
        if part and size + weight(converted) > MAX_APPEND_BYTES:
            yield part
            part, size = [], 0
        part.append((event_id, converted))
        size += weight(converted)
    if part:
        yield part
