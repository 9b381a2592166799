"""`get(event_id)`: through the id index (ids.py), two reads; for an archive written before the id
index and not reindexed yet, the recent-id window, else a backwards scan of `$all` (as before)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from eventreplay.store.base import StoredEvent
from eventreplay.store.esdb import fields, retention
from eventreplay.store.esdb.mapping import archived_event, server_filters

if TYPE_CHECKING:
    from eventreplay.store.esdb.store import EventStoreDBEventStore


def get(store: "EventStoreDBEventStore", key: str) -> StoredEvent | None:
    ids = store._ids
    last = ids.last(key)
    if last is not None:
        if ids.is_link(last):
            recorded = ids.target(last)
        else:  # claimed, not linked (yet): look right after the claim
            recorded = ids.after_claim(last, key)
        stored = archived_event(recorded, store._prefix) if recorded is not None else None
        if stored is not None and stored.event_id == key:
            return _live(store, stored)
        if ids.is_link(last):
            return None  # linked to an event the retention truncated
    coverage = fields.read(store._records)
    if coverage is not None and coverage.ready(fields.IDS):
        return None
    return _by_scan(store, key)


def _live(store: "EventStoreDBEventStore", stored: StoredEvent | None) -> StoredEvent | None:
    if stored is None or retention.current(store._records).deletes_event(stored):
        return None
    return stored


def _by_scan(store: "EventStoreDBEventStore", key: str) -> StoredEvent | None:
    with store._window_lock:
        store._follow(window=True)
        window = store._window
        in_window = key in window
        position = window.position_of(key)
        if not in_window and window.complete:
            return None
        oldest = window.oldest_position() if not in_window else None
    if position is not None:
        filters = server_filters(store._prefix, None)
        for recorded in store._log.chunk(position=position, backwards=False, filters=filters, limit=1):
            stored = archived_event(recorded, store._prefix)
            if stored is not None and stored.event_id == key:
                return _live(store, stored)
    for recorded in store._log.scan(backwards=True, before=oldest):
        if str(recorded.id) == key:
            return _live(store, archived_event(recorded, store._prefix))
    return None
