"""The EventStoreDB store over the years, what only EventStoreDB needs checking (the `esdb_store_url`
fixture: an empty store under a stream prefix of the test's own): the id index closes the recent-id
window (dedup and `get` of old events without reading `$all`), the tally survives a restart, the
retention truncates streams with `$tb`, and the key streams are EventStoreDB link events."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from eventreplay.store import EventQuery, StoreUnavailable
from eventreplay.store.esdb import EventStoreDBEventStore
from eventreplay.store.esdb.links import key_stream
from eventreplay.store.urls import parse_store_url
from tests.support.events import T0, new_event, series

pytestmark = pytest.mark.esdb


def open_esdb(url: str, **options) -> EventStoreDBEventStore:
    location = parse_store_url(url)
    return EventStoreDBEventStore(location.uri, stream_prefix=location.stream_prefix, **options)


class Recording:
    """The store's esdbclient client, noting every read of `$all` (with its start position)."""

    def __init__(self, client):
        self._client = client
        self.reads_of_all: list[int | None] = []

    def read_all(self, *args, **kwargs):
        if not kwargs.get("backwards"):
            self.reads_of_all.append(kwargs.get("commit_position"))
        else:
            self.reads_of_all.append(-1)  # a backwards read: from the end
        return self._client.read_all(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def recording(store: EventStoreDBEventStore) -> Recording:
    spy = Recording(store.client())
    store._client = spy
    return spy


def ids(events) -> list[str]:
    return [e.event_id for e in events]


def test_a_redelivery_older_than_the_window_is_not_stored_twice(esdb_store_url):
    store = open_esdb(esdb_store_url, window_size=3, read_chunk=4)
    events = series(12)
    try:
        for i in range(0, 12, 4):
            assert store.append(events[i:i + 4]) == 4
        assert len(store._window) == 3 and events[0].event_id not in store._window
        assert store.append([events[0]]) == 0  # older than the window: the id index knows it
        fresh = new_event("OrderShipped")
        assert store.append(events[:6] + [fresh]) == 1
    finally:
        store.close()
    other = open_esdb(esdb_store_url, window_size=3)  # another process, its own window
    try:
        assert other.append([events[1], events[2]]) == 0
        stored = list(other.read())
        assert len(stored) == 13 and len(set(ids(stored))) == 13
        assert other.count() == 13 and other.counts_by_type() == {"OrderPlaced": 12, "OrderShipped": 1}
    finally:
        other.close()


def test_get_of_an_old_event_reads_no_all(esdb_store_url):
    store = open_esdb(esdb_store_url, window_size=5)
    events = series(300)
    try:
        for i in range(0, 300, 100):
            store.append(events[i:i + 100])
        spy = recording(store)
        for event in (events[0], events[150], events[-1]):
            found = store.get(event.event_id)
            assert found is not None and found.event_id == event.event_id and found.body == event.body
        assert store.get("6f1c5bd5-57a0-4bd4-9d7c-3c3f0e1c1f00") is None
        assert spy.reads_of_all == []
    finally:
        store.close()


def test_counts_by_type_survive_reopening_without_rereading_all_from_the_start(esdb_store_url):
    first = open_esdb(esdb_store_url)
    try:
        first.append(series(40, "OrderPlaced") + series(25, "UserLoggedIn"))
        first.append(series(10, "OrderShipped"))
        assert first.counts_by_type() == {"OrderPlaced": 40, "OrderShipped": 10, "UserLoggedIn": 25}
        oldest = next(iter(first.read())).position
    finally:
        first.close()  # writes the tally's checkpoint
    crashed = open_esdb(esdb_store_url)
    crashed.append(series(5, "OrderPlaced"))  # never closed: no checkpoint for these
    reopened = open_esdb(esdb_store_url)
    try:
        spy = recording(reopened)
        assert reopened.counts_by_type() == {"OrderPlaced": 45, "OrderShipped": 10, "UserLoggedIn": 25}
        assert reopened.count(EventQuery(event_types=("OrderPlaced",))) == 45
        assert spy.reads_of_all and all(start is not None and start > oldest for start in spy.reads_of_all)
    finally:
        reopened.close()
        crashed.close()


def test_two_writers_storing_the_same_events_at_once_store_each_once(esdb_store_url):
    """The second writer finds the first one's claims, not yet its events: it must not store them
    too, but wait (StoreUnavailable, retried as the consumer does) until they are stored."""
    batch = series(150) + series(50, "PaymentProcessed")
    first, second = open_esdb(esdb_store_url), open_esdb(esdb_store_url)
    claimed, second_tried = threading.Event(), threading.Event()
    appending = first._appender._store_events

    def slow_after_claiming(owned):
        claimed.set()
        second_tried.wait(20)  # the second writer looks while the claims are bare
        return appending(owned)

    first._appender._store_events = slow_after_claiming
    new: list[int] = []
    errors: list[BaseException] = []
    retries: list[str] = []

    def write(store, after: threading.Event | None):
        try:
            if after is not None:
                after.wait(20)
            deadline = time.monotonic() + 60
            while True:
                try:
                    new.append(store.append(batch))
                    return
                except StoreUnavailable as error:  # the other one is storing them: retry later
                    retries.append(str(error))
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
                finally:
                    if after is not None:
                        second_tried.set()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(first, None)), threading.Thread(target=write, args=(second, claimed))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not errors and sorted(new) == [0, 200]
        assert retries and "being stored by another writer" in retries[0]
        stored = list(second.read())
        assert len(stored) == 200 and len(set(ids(stored))) == 200
    finally:
        first.close()
        second.close()


def test_prune_truncates_the_routing_key_streams_and_reads_hide_the_rest(esdb_store_url):
    store = open_esdb(esdb_store_url)
    events = [new_event("OrderPlaced", timestamp=T0 + timedelta(minutes=i), order_id=f"o{i % 4}") for i in range(20)]
    events[12] = new_event("OrderPlaced", timestamp=T0 - timedelta(days=1), order_id="o0")  # late, old
    try:
        store.index_fields(["order_id"])
        store.append(events)
        cutoff = T0 + timedelta(minutes=10)
        assert store.prune(cutoff) == 11  # 0..9 and the late one
        kept = [e for e in events if e.timestamp >= cutoff]
        assert ids(store.read()) == ids(kept)
        assert store.count() == 9 and store.counts_by_type() == {"OrderPlaced": 9}
        assert ids(store.read(EventQuery(match={"order_id": "o0"}))) == ids(e for e in kept if b'"o0"' in e.body)
        assert store.get(events[0].event_id) is None and store.get(events[15].event_id).event_id == events[15].event_id
        raw = store.client()
        stream = store.stream_prefix + "order-events"
        metadata, _ = raw.get_stream_metadata(stream)
        assert metadata["$tb"] == 10  # the late event at 12 is hidden by the rule, the scavenge keeps it
        assert [e.stream_position for e in raw.get_stream(stream)][:1] == [10]
        span = store.span()
        assert (span.events, span.oldest, span.pruned_before) == (9, cutoff, cutoff)
        assert store.prune(cutoff) == 0
    finally:
        store.close()


def test_key_streams_hold_eventstoredb_link_events(esdb_store_url):
    store = open_esdb(esdb_store_url)
    try:
        store.index_fields(["order_id"])
        events = [new_event("OrderPlaced", order_id="o-1"), new_event("OrderPlaced", order_id=1),
                  new_event("OrderPlaced", order_id=True)]
        store.append(events)
        raw = store.client()
        text = raw.get_stream(key_stream(store.stream_prefix, "order_id", "o-1"))
        assert [(e.type, e.data.decode().split("@")[1]) for e in text] == [("$>", store.stream_prefix + "order-events")]
        resolved = raw.get_stream(key_stream(store.stream_prefix, "order_id", 1), resolve_links=True)
        assert sorted(str(e.id) for e in resolved) == sorted([events[1].event_id, events[2].event_id])  # 1 == True
        assert ids(store.read(EventQuery(match={"order_id": "1"}))) == []  # "1" != 1
        assert not store.reads_everything(EventQuery(match={"order_id": True}))
        assert store.count(EventQuery(match={"order_id": 1.0})) == 2
    finally:
        store.close()


def test_reindex_stops_and_continues_where_it_stopped(esdb_store_url):
    from eventreplay.store.esdb import fields

    store = open_esdb(esdb_store_url)
    events = [new_event("OrderPlaced", timestamp=T0 + timedelta(seconds=i), order_id=f"o{i % 7}") for i in range(60)]
    try:
        store.append(events)
        store.index_fields(["order_id"])
        assert [index.ready for index in store.field_indexes()] == [False]
        stop = threading.Event()
        original, fields.REINDEX_STEP = fields.REINDEX_STEP, 25
        try:
            first = store.reindex(progress=lambda done, total: stop.set(), stop=stop)
            assert 0 < first < 60 and not store.field_indexes()[0].ready
            rest = store.reindex()
        finally:
            fields.REINDEX_STEP = original
        assert first + rest == 60 and store.field_indexes()[0].ready and store.reindex() == 0
        assert store.count(EventQuery(match={"order_id": "o3"})) == sum(1 for i in range(60) if i % 7 == 3)
        assert not store.reads_everything(EventQuery(match={"order_id": "o3"}))
    finally:
        store.close()
