"""An archive that grows for years, on every backend: payload-field indexes that give exactly what a
scan gives, counts kept exact through appends, duplicates and pruning, retention boundaries, an
archive indexed after the fact, time windows, and what the archive spans.

The reference for every read is a plain Python filter over all the events (EventQuery.matches):
whatever path a store takes (an index, a seek, a scan), its answer must be that one."""
from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest

from eventreplay.store import EventQuery, EventStore, NewEvent, StoredEvent
from tests.support.events import T0, new_event
from tests.support.stores import seed

FIELDS = ("order_id", "user_id")
TYPES = ("OrderPlaced", "PaymentProcessed", "OrderShipped", "UserLoggedIn")


def shop_events(count: int, *, seed_value: int = 7) -> list[NewEvent]:
    """Orders and users interleaved, timestamps mostly rising with some out of order, a few odd
    values (numbers, booleans, null, nested) in the indexed fields."""
    rng = random.Random(seed_value)
    events = []
    for i in range(count):
        fields = {"order_id": f"o{rng.randrange(count // 6 + 1)}", "user_id": f"u{rng.randrange(12)}", "n": i}
        roll = rng.random()
        if roll < 0.05:
            fields["order_id"] = rng.randrange(5)  # a number
        elif roll < 0.07:
            fields["order_id"] = rng.choice([True, False, None, {"id": 1}, 2.5])
        elif roll < 0.1:
            del fields["order_id"]
        skew = timedelta(seconds=rng.randrange(-30, 30))
        events.append(new_event(rng.choice(TYPES), timestamp=T0 + timedelta(seconds=10 * i) + skew, **fields))
    return events


def expected(store: EventStore, query: EventQuery) -> list[int]:
    """The positions a query must return: every stored event, filtered in Python."""
    everything = list(store.read(EventQuery()))
    kept = [e for e in everything if query.matches(e)
            and (query.after_position is None or e.position > query.after_position)
            and (query.up_to_position is None or e.position <= query.up_to_position)]
    return [e.position for e in kept][:query.limit]


def positions(events) -> list[int]:
    return [event.position for event in events]


def queries(events: list[StoredEvent]) -> list[EventQuery]:
    middle = T0 + timedelta(seconds=10 * (len(events) // 2))
    rng = random.Random(3)
    some_order = next(e for e in events if b'"order_id": "o' in e.body).payload()["order_id"]
    some_user = events[len(events) // 3].payload()["user_id"]
    matches = [None, {"order_id": some_order}, {"user_id": some_user}, {"order_id": some_order, "user_id": some_user},
               {"order_id": 3}, {"order_id": True}, {"order_id": None}, {"order_id": 2.5}, {"n": 5},
               {"user_id": some_user, "n": 17}, {"order_id": "nope"}]
    windows = [(None, None), (middle, None), (None, middle), (middle - timedelta(minutes=20), middle + timedelta(minutes=20))]
    out = []
    for match, (since, until), types in itertools.product(matches, windows, [None, ("OrderPlaced",), TYPES[1:3]]):
        out.append(EventQuery(match=match, since=since, until=until, event_types=types))
    out.append(EventQuery(match={"user_id": some_user}, after_position=events[len(events) // 2].position, limit=7))
    out.append(EventQuery(match={"user_id": some_user}, up_to_position=events[len(events) // 4].position))
    return rng.sample(out, 60) + out[-2:]


def assert_reads_like_a_scan(store: EventStore, sample: list[EventQuery]) -> None:
    for query in sample:
        want = expected(store, query)
        assert positions(store.read(query)) == want, query
        assert store.count(query) == len(want), query


@pytest.fixture
def indexed_store(store) -> EventStore:
    store.index_fields(FIELDS)
    return store


def test_an_indexed_match_returns_exactly_what_a_scan_returns(indexed_store):
    seed(indexed_store, shop_events(600))
    assert all(index.ready for index in indexed_store.field_indexes())
    assert {index.field for index in indexed_store.field_indexes()} == set(FIELDS)
    assert_reads_like_a_scan(indexed_store, queries(list(indexed_store.read(EventQuery()))))


def test_an_indexed_match_needs_no_scan_of_the_archive(indexed_store):
    seed(indexed_store, shop_events(60))
    assert not indexed_store.reads_everything(EventQuery(match={"order_id": "o1"}))
    assert not indexed_store.reads_everything(EventQuery(match={"order_id": "o1", "n": 4}))  # the index drives
    assert indexed_store.reads_everything(EventQuery(match={"n": 4}))  # no index on n: a scan


def test_an_archive_indexed_after_the_fact_is_reindexed_and_reads_the_same(store):
    seed(store, shop_events(500))
    store.index_fields(FIELDS)
    assert not any(index.ready for index in store.field_indexes())  # older events not indexed yet
    sample = queries(list(store.read(EventQuery())))
    assert_reads_like_a_scan(store, sample[:20])  # not ready: served without the index, still exact
    store.append(shop_events(100, seed_value=8))  # ingest goes on meanwhile, indexed as it comes
    seen = []
    done = store.reindex(progress=lambda done, total: seen.append((done, total)))
    assert done > 0 and seen and seen[-1][0] == seen[-1][1]
    assert all(index.ready for index in store.field_indexes())
    assert store.reindex() == 0  # nothing left: resumable means a second run has nothing to do
    assert_reads_like_a_scan(store, queries(list(store.read(EventQuery()))))


def test_counts_by_type_stay_exact_through_appends_duplicates_and_pruning(indexed_store):
    events = shop_events(300)
    seed(indexed_store, events)
    assert indexed_store.append(events[:50]) == 0  # duplicates change nothing
    truth = {}
    for event in events:
        truth[event.event_type] = truth.get(event.event_type, 0) + 1
    assert indexed_store.counts_by_type() == dict(sorted(truth.items()))
    middle = T0 + timedelta(seconds=10 * 150)
    deleted = indexed_store.prune(middle)
    assert deleted == sum(1 for event in events if event.timestamp < middle)
    left = {}
    for event in events:
        if event.timestamp >= middle:
            left[event.event_type] = left.get(event.event_type, 0) + 1
    assert indexed_store.counts_by_type() == dict(sorted(left.items()))
    assert indexed_store.count(EventQuery()) == sum(left.values())
    assert_reads_like_a_scan(indexed_store, queries(list(indexed_store.read(EventQuery())))[:30])


def test_retention_boundaries_by_age_and_by_type(store):
    events = shop_events(200)
    seed(store, events)
    cutoff = T0 + timedelta(seconds=10 * 100)
    # one type kept shorter: only its events before the cutoff go
    gone = store.prune(cutoff, event_types=("UserLoggedIn",))
    assert gone == sum(1 for e in events if e.event_type == "UserLoggedIn" and e.timestamp < cutoff)
    # the rest, except a type kept longer
    gone = store.prune(cutoff, except_types=("OrderPlaced",))
    assert gone == sum(1 for e in events if e.event_type not in ("UserLoggedIn", "OrderPlaced") and e.timestamp < cutoff)
    kept = {e.event_id for e in store.read(EventQuery())}
    assert kept == {e.event_id for e in events if e.timestamp >= cutoff or e.event_type == "OrderPlaced"}
    assert store.prune(cutoff, except_types=("OrderPlaced",)) == 0  # exact at the boundary, nothing twice
    assert store.span().pruned_before == cutoff


def test_the_span_says_what_the_archive_holds(store):
    empty = store.span()
    assert (empty.events, empty.oldest, empty.newest, empty.pruned_before) == (0, None, None, None)
    events = shop_events(120)
    seed(store, events)
    span = store.span()
    assert span.events == 120
    assert span.oldest == min(e.timestamp for e in events) and span.newest == max(e.timestamp for e in events)


def test_time_windows_read_like_a_scan_on_a_larger_archive(store):
    # several time blocks (SQLite keeps one per 4,096 positions)
    seed(store, shop_events(9_000, seed_value=11), batch=3_000)
    stored = list(store.read(EventQuery()))
    middle = stored[len(stored) // 2].timestamp
    for since, until in ((middle, None), (None, middle), (middle, middle + timedelta(hours=1)),
                         (T0 - timedelta(days=1), T0 - timedelta(hours=1))):
        for types in (None, ("OrderShipped",)):
            query = EventQuery(since=since, until=until, event_types=types, limit=2_000)
            assert positions(store.read(query)) == expected(store, query)


def test_an_archive_pruned_of_its_newest_events_indexes_what_comes_next(indexed_store):
    # the newest positions carry the oldest timestamps: pruning empties the archive's tail, and the
    # next events must still land in the index under their own positions
    old = [new_event("OrderPlaced", timestamp=T0 - timedelta(days=30), order_id=f"o{i % 3}") for i in range(40)]
    seed(indexed_store, shop_events(60) + old)
    assert indexed_store.prune(T0 - timedelta(days=1)) == 40
    seed(indexed_store, [new_event("OrderPlaced", timestamp=T0, order_id=f"o{i % 3}") for i in range(30)])
    assert_reads_like_a_scan(indexed_store, [EventQuery(match={"order_id": f"o{i}"}) for i in range(3)]
                             + [EventQuery(match={"order_id": "o1"}, event_types=("OrderPlaced",))])
    assert indexed_store.count(EventQuery(match={"order_id": "o2"}, since=T0 - timedelta(days=2),
                                          until=T0 - timedelta(days=1))) == 0  # pruned: gone from the index too
