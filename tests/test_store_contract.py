"""The EventStore contract, run against every backend (the `store` / `store_url` fixtures: SQLite in a
temp folder, and EventStoreDB at ESDB_URL under a unique stream prefix; without ESDB_URL those skip).

Backend-specific checks (SQLite pragmas and locking, EventStoreDB's marker and job-record exclusion)
come after the contract.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from eventreplay.schema import EVENT_TYPES
from eventreplay.store.urls import parse_store_url
from eventreplay.store import (
    EventQuery,
    InvalidStoreURL,
    PersistenceError,
    StoredEvent,
    StoreUnavailable,
    open_store,
)
from tests.support.events import T0, new_event, series

UNREACHABLE_ESDB = "esdb://127.0.0.1:1?Tls=false"


def ids(events) -> list[str]:
    return [e.event_id for e in events]


def assert_global_order(events: list[StoredEvent]) -> None:
    positions = [e.position for e in events]
    assert all(isinstance(p, int) for p in positions)
    assert positions == sorted(set(positions)), "positions must be strictly increasing"


# append and idempotency


def test_append_returns_how_many_were_new(store):
    assert store.append([]) == 0
    assert store.append(series(3)) == 3
    assert store.append(series(2)) == 2
    assert store.count() == 5


def test_reappending_the_same_batch_stores_nothing(store):
    batch = series(5)
    assert store.append(batch) == 5
    assert store.append(batch) == 0
    assert store.append(list(reversed(batch))) == 0
    assert store.count() == 5


def test_batch_mixing_stored_and_new_events_stores_only_the_new_once(store):
    old = series(4)
    store.append(old)
    fresh = series(3, "PaymentProcessed")
    mixed = [old[0], fresh[0], old[1], fresh[1], fresh[2], old[3]]
    assert store.append(mixed) == 3
    assert store.append(mixed) == 0
    stored = list(store.read())
    assert sorted(ids(stored)) == sorted(ids(old + fresh))
    assert len(set(ids(stored))) == len(stored)


def test_duplicates_within_one_batch_are_stored_once(store):
    event = new_event()
    other = new_event("UserLoggedIn")
    assert store.append([event, other, event, event]) == 2
    assert sorted(ids(store.read())) == sorted([event.event_id, other.event_id])


def test_event_id_spelling_does_not_defeat_dedup(store):
    event = new_event()
    assert store.append([event]) == 1
    shouting = new_event(event_id=event.event_id.upper(), body=event.body)
    assert store.append([shouting]) == 0
    assert store.get(event.event_id.upper()).event_id == event.event_id


def test_another_writer_on_the_same_store_is_deduplicated(store, store_url):
    """Competing consumers: a redelivery to a second process of what the first one stored."""
    first_batch = series(3)
    store.append(first_batch)  # this instance has looked at the store now
    other = open_store(store_url)
    try:
        stored_elsewhere = series(4, "OrderShipped")
        assert other.append(stored_elsewhere) == 4
    finally:
        other.close()
    fresh = series(2, "OrderDelivered")
    assert store.append(stored_elsewhere[1:3] + fresh + first_batch[:1]) == 2
    assert store.count() == 9
    assert len(set(ids(store.read()))) == 9


def test_concurrent_appends_and_reads_from_threads(store):
    batches = [series(40, EVENT_TYPES[i]) for i in range(6)]
    errors: list[BaseException] = []
    new_counts: list[int] = []

    def work(i: int) -> None:
        try:
            # each thread appends its own batch and its neighbour's: every batch is offered twice
            new_counts.append(store.append(batches[i]))
            new_counts.append(store.append(batches[(i + 1) % len(batches)]))
            list(store.read(EventQuery(limit=50)))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(new_counts) == 240
    assert store.count() == 240


# reads


def test_read_everything_in_global_order(store):
    first = series(3, "OrderPlaced")
    second = series(3, "UserLoggedIn")
    store.append(first)
    store.append(second)
    stored = list(store.read())
    assert_global_order(stored)
    # batches keep their order relative to each other, and order within a routing key is kept
    assert ids(stored[:3]) == ids(first) and ids(stored[3:]) == ids(second)


def test_order_within_a_routing_key_is_kept_inside_a_batch(store):
    batch = []
    for i in range(12):
        batch.append(new_event(EVENT_TYPES[i % 4], timestamp=T0 + timedelta(seconds=i)))
    store.append(batch)
    stored = list(store.read())
    assert_global_order(stored)
    for key in {e.routing_key for e in batch}:
        assert ids(e for e in stored if e.routing_key == key) == ids(e for e in batch if e.routing_key == key)


def test_read_by_type_and_by_several_types(store):
    events = [new_event(t, timestamp=T0 + timedelta(seconds=i)) for i, t in enumerate(EVENT_TYPES * 3)]
    store.append(events[:20])
    store.append(events[20:])
    placed = list(store.read(EventQuery(event_types=("OrderPlaced",))))
    assert ids(placed) == ids(e for e in events if e.event_type == "OrderPlaced")
    assert {e.event_type for e in placed} == {"OrderPlaced"}
    wanted = ("UserLoggedIn", "OrderPlaced", "PaymentProcessed")
    several = list(store.read(EventQuery(event_types=wanted)))
    assert_global_order(several)
    assert sorted(ids(several)) == sorted(ids(e for e in events if e.event_type in wanted))
    assert list(store.read(EventQuery(event_types=("NoSuchType",)))) == []
    assert list(store.read(EventQuery(event_types=()))) == []


def test_type_names_are_matched_literally(store):
    store.append([new_event("Order.Placed+"), new_event("OrderXPlaced"), new_event("Order")])
    assert [e.event_type for e in store.read(EventQuery(event_types=("Order.Placed+",)))] == ["Order.Placed+"]
    assert [e.event_type for e in store.read(EventQuery(event_types=("Order", "Nope")))] == ["Order"]


def test_time_window_since_inclusive_until_exclusive(store):
    events = series(6)  # T0, T0+1s, ... T0+5s
    store.append(events)
    window = EventQuery(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=4))
    assert ids(store.read(window)) == ids(events[1:4])
    assert store.count(window) == 3
    assert ids(store.read(EventQuery(since=T0 + timedelta(seconds=4)))) == ids(events[4:])
    assert ids(store.read(EventQuery(until=T0 + timedelta(seconds=1)))) == ids(events[:1])


def test_naive_times_in_a_query_mean_utc(store):
    events = series(4)
    store.append(events)
    naive = EventQuery(since=(T0 + timedelta(seconds=1)).replace(tzinfo=None),
                       until=(T0 + timedelta(seconds=3)).replace(tzinfo=None))
    assert ids(store.read(naive)) == ids(events[1:3])
    plus_two = timezone(timedelta(hours=2))
    elsewhere = EventQuery(since=(T0 + timedelta(seconds=1)).astimezone(plus_two))
    assert ids(store.read(elsewhere)) == ids(events[1:])


def test_after_position_is_exclusive_and_limit_caps(store):
    store.append(series(7))
    everything = list(store.read())
    after = everything[2].position
    assert ids(store.read(EventQuery(after_position=after))) == ids(everything[3:])
    assert ids(store.read(EventQuery(limit=2))) == ids(everything[:2])
    assert ids(store.read(EventQuery(after_position=after, limit=3))) == ids(everything[3:6])
    assert list(store.read(EventQuery(limit=0))) == []
    assert list(store.read(EventQuery(after_position=everything[-1].position))) == []
    # paging by position visits everything exactly once
    seen, cursor = [], None
    while True:
        page = list(store.read(EventQuery(after_position=cursor, limit=3)))
        if not page:
            break
        seen += page
        cursor = page[-1].position
    assert ids(seen) == ids(everything)


MATCH_PAYLOADS = [
    {"user_id": "u1", "qty": 1, "flag": True, "note": None, "price": 1.5, "tags": ["a"], "a.b": "dot"},
    {"user_id": "u2", "qty": 1.0, "flag": 1, "price": 1.50},
    {"user_id": "u1", "qty": "1", "flag": "true", "note": "null", "tags": "[\"a\"]"},
    {"user_id": "U1", "qty": 2, "flag": False, "nested": {"user_id": "u1"}, "big": 2**60 + 1},
    {"qty": True, "flag": 0, "note": 0, "big": 2**60},
]
MATCHES = [
    {"user_id": "u1"}, {"user_id": "nobody"}, {"qty": 1}, {"qty": "1"}, {"flag": True}, {"flag": False},
    {"flag": 1}, {"note": None}, {"price": 1.5}, {"tags": ["a"]}, {"a.b": "dot"}, {"big": 2**60},
    {"user_id": "u1", "qty": 1}, {"nested": {"user_id": "u1"}}, {"missing": None}, {"user_id": "u1", "flag": "true"},
]


@pytest.mark.parametrize("match", MATCHES, ids=[json.dumps(m) for m in MATCHES])
def test_match_on_payload_fields_equals_python_equality(store, match):
    events = [new_event("ProductViewed", timestamp=T0 + timedelta(seconds=i), **p)
              for i, p in enumerate(MATCH_PAYLOADS)]
    # a body Python parses but SQLite's JSON does not (NaN): still filtered right
    events.append(new_event("ProductViewed", body=b'{"user_id": "u1", "qty": 1, "x": NaN, "flag": true}'))
    store.append(events)
    query = EventQuery(match=match)
    expected = [e.event_id for e in events if query.matches(e)]
    assert ids(store.read(query)) == expected
    assert store.count(query) == len(expected)


def test_match_combines_with_type_time_and_limit(store):
    events = [new_event(EVENT_TYPES[i % 2], timestamp=T0 + timedelta(seconds=i), user_id=f"u{i % 3}")
              for i in range(30)]
    store.append(events)
    query = EventQuery(event_types=(EVENT_TYPES[0],), since=T0 + timedelta(seconds=5), match={"user_id": "u0"}, limit=3)
    expected = [e.event_id for e in events if query.matches(e)][:3]
    assert len(expected) == 3
    assert ids(store.read(query)) == expected
    assert store.count(query) == 3


# count, counts_by_type, get


def test_count_and_counts_by_type(store):
    assert store.count() == 0
    assert store.counts_by_type() == {}
    store.append(series(4, "OrderPlaced") + series(2, "UserLoggedIn"))
    assert store.counts_by_type() == {"OrderPlaced": 4, "UserLoggedIn": 2}
    store.append(series(3, "UserLoggedIn"))
    assert store.counts_by_type() == {"OrderPlaced": 4, "UserLoggedIn": 5}
    assert store.count() == 9
    assert store.count(EventQuery(event_types=("UserLoggedIn",))) == 5
    assert store.count(EventQuery(limit=4)) == 4
    first = next(iter(store.read()))
    assert store.count(EventQuery(after_position=first.position)) == 8


def test_counts_per_minute_of_the_last_hour_by_event_timestamp(store):
    # the ingest chart's numbers: minute i counts start + i min <= timestamp < start + (i+1) min,
    # by the event's own time, whatever order the events arrived in
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=59)
    minute, tick = timedelta(minutes=1), timedelta(microseconds=1)
    inside = (series(3, start=start, step=timedelta(seconds=19))  # minute 0, from its first microsecond
              + series(4, "UserLoggedIn", start=start + 17 * minute + timedelta(seconds=30), step=tick)
              + [new_event(timestamp=start + 59 * minute + timedelta(seconds=59, microseconds=999_999))])
    outside = [new_event(timestamp=start - tick), new_event(timestamp=start + 60 * minute),
               new_event(timestamp=start - timedelta(hours=2)), new_event(timestamp=start + timedelta(days=1))]
    store.append(inside[4:] + outside[:2])
    store.append(outside[2:] + inside[:4])
    expected = [0] * 60
    expected[0], expected[17], expected[59] = 3, 4, 1
    assert store.counts_per_minute(start, 60) == expected
    assert store.counts_per_minute(start.replace(tzinfo=None), 60) == expected  # naive means UTC
    # asked again after more arrived (the overview polls): new events and a late one count too
    store.append([new_event(timestamp=start + 59 * minute), new_event(timestamp=start + 5 * minute),
                  new_event(timestamp=start - minute)])
    expected[59], expected[5] = 2, 1
    assert store.counts_per_minute(start, 60) == expected
    assert store.counts_per_minute(start + 17 * minute, 1) == [4]
    assert store.counts_per_minute(start - timedelta(hours=3), 2) == [0, 0]
    with pytest.raises(ValueError):
        store.counts_per_minute(start, 0)


def test_up_to_position_fixes_a_read_to_what_the_store_held(store):
    # A replay reads what was archived when it started, whatever arrives meanwhile.
    assert store.last_position() >= 0
    early = series(5)
    store.append(early)
    bound = store.last_position()
    store.append(series(3, event_type="OrderShipped") + series(2))
    query = EventQuery(up_to_position=bound)
    assert [e.event_id for e in store.read(query)] == [e.event_id for e in early]
    assert store.count(query) == 5
    assert store.count(EventQuery(event_types=("OrderPlaced",), up_to_position=bound)) == 5
    assert store.last_position() > bound
    assert store.count(EventQuery(up_to_position=store.last_position())) == 10


def test_get_by_event_id(store):
    events = series(5)
    store.append(events)
    found = store.get(events[3].event_id)
    assert found is not None and found.event_id == events[3].event_id and found.body == events[3].body
    assert store.get(str(uuid.uuid4())) is None
    assert store.get("not-a-uuid") is None


# round trips


ODD_BODIES = [
    '{"event_id":"%s","event_type":"ProductReviewed","timestamp":"2024-05-01T12:00:00",'
    '"review_text":"Très bien — 很好 👍","rating":5}',
    '{ "event_id" : "%s",\n\t"event_type":"ProductReviewed" ,  "timestamp":"2024-05-01T12:00:00"  ,'
    ' "escaped":"caf\\u00e9 \\"q\\" \\\\", "z":1e3, "a":-0.0 }\r\n',
    '{"timestamp":"2024-05-01T12:00:00+00:00","event_type":"ProductReviewed","event_id":"%s","n":[1,{"x":null}]}',
]


def test_body_bytes_round_trip_byte_identical(store):
    events = []
    for template in ODD_BODIES:
        event_id = str(uuid.uuid4())
        events.append(new_event("ProductReviewed", event_id=event_id, body=(template % event_id).encode()))
    store.append(events)
    by_id = {e.event_id: e for e in store.read()}
    for event in events:
        assert by_id[event.event_id].body == event.body
        assert store.get(event.event_id).body == event.body


def test_envelope_and_properties_round_trip(store):
    received = datetime(2024, 5, 1, 12, 0, 1, 123456, tzinfo=timezone.utc)
    properties = {
        "message_id": "m-1", "type": "OrderPlaced", "content_type": "application/json", "delivery_mode": 2,
        "timestamp": 1714564800, "headers": {"x-source": "sim", "x-n": 3, "x-list": [1, "two"], "x-none": None,
                                              "x-ü": "ümlaut"},
    }
    event = new_event(timestamp=datetime(2024, 5, 1, 12, 0, 0, 654321, tzinfo=timezone.utc),
                      routing_key="order-events", exchange="ecommerce-exchange", properties=properties,
                      received_at=received)
    odd_key = new_event("Unknown.Thing", routing_key="")  # no usable stream name
    store.append([event, odd_key])
    stored = store.get(event.event_id)
    assert (stored.event_type, stored.routing_key, stored.exchange) == ("OrderPlaced", "order-events", "ecommerce-exchange")
    assert stored.timestamp == event.timestamp and stored.timestamp.tzinfo is not None
    assert stored.received_at == received
    assert dict(stored.properties) == properties
    assert stored.payload()["event_id"] == event.event_id
    assert store.get(odd_key.event_id).routing_key == ""


def test_reopened_store_keeps_everything_and_stays_idempotent(store_url):
    first = open_store(store_url)
    old = series(10)
    try:
        first.append(old[:6])
        first.append(old[6:])
        positions = [e.position for e in first.read()]
    finally:
        first.close()
    with pytest.raises(PersistenceError):
        first.append(series(1))

    reopened = open_store(store_url)
    try:
        assert [e.position for e in reopened.read()] == positions
        assert reopened.append(old) == 0
        fresh = series(2, "UserLoggedOut")
        assert reopened.append([old[5], fresh[0], old[0], fresh[1], old[9]]) == 2
        stored = list(reopened.read())
        assert len(stored) == 12 and len(set(ids(stored))) == 12
        assert reopened.get(old[0].event_id).event_id == old[0].event_id
        assert reopened.counts_by_type() == {"OrderPlaced": 10, "UserLoggedOut": 2}
    finally:
        reopened.close()


def test_read_is_lazy_and_survives_appends_in_between(store):
    store.append(series(5))
    reader = store.read()
    first = next(reader)
    store.append(series(2, "UserLoggedIn"))
    rest = list(reader)
    assert_global_order([first] + rest)
    assert len(rest) in (4, 6)  # a snapshot or a live view; never duplicates, never gaps


# errors


@pytest.mark.parametrize("url", [
    "", "events.db", "postgres://localhost/db", "sqlite://", "sqlite:///", "sqlite:///dir/",
    "sqlite:///:memory:", "sqlite://host/events.db", "sqlite:///events.db?mode=ro",
    "esdb://127.0.0.1:2113?Tls=perhaps", "esdb://127.0.0.1:2113?NoSuchOption=1",
    "esdb://127.0.0.1:2113?Tls=false&streamPrefix=$system",
])
def test_invalid_url_raises_invalid_store_url(url):
    with pytest.raises(InvalidStoreURL):
        open_store(url)


def test_unreachable_eventstoredb_is_reported_quickly():
    store = open_store(UNREACHABLE_ESDB)  # opening does not connect: a consumer may start first
    try:
        for attempt in (store.ping, store.probe_write, lambda: store.append([new_event()]),
                        lambda: list(store.read()), store.count, store.counts_by_type):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                attempt()
            assert time.monotonic() - started < 5
            assert "127.0.0.1:1" in str(caught.value) or "connect" in str(caught.value).lower()
    finally:
        store.close()


def test_ping_on_a_working_store(store):
    store.ping()


def test_write_probe_and_free_space_on_a_working_store_archive_nothing(store):
    store.append(series(3))
    for _ in range(3):
        store.probe_write()
        store.check_free_space()
    assert store.count() == 3 and len(list(store.read())) == 3
    assert sum(store.counts_by_type().values()) == 3


def test_write_probe_on_a_closed_store_is_unavailable(store_url):
    store = open_store(store_url)
    store.close()
    with pytest.raises(StoreUnavailable):
        store.probe_write()


# flat memory on a long read


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_streaming_read_of_200k_events_keeps_memory_flat(store):
    total, batch_size = 200_000, 500
    start = time.monotonic()
    for offset in range(0, total, batch_size):
        batch = [new_event(EVENT_TYPES[i % len(EVENT_TYPES)], timestamp=T0 + timedelta(milliseconds=i),
                           n=i, note="x" * 120) for i in range(offset, offset + batch_size)]
        assert store.append(batch) == batch_size
    appended_in = time.monotonic() - start

    tracemalloc.start()
    try:
        # what holding every event would take, extrapolated from a sample
        before = tracemalloc.take_snapshot().statistics("filename")
        baseline = tracemalloc.get_traced_memory()[0]
        sample = list(store.read(EventQuery(limit=2000)))
        holding_all = (tracemalloc.get_traced_memory()[0] - baseline) * (total / len(sample))
        del sample, before

        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        count, last = 0, -1
        for event in store.read():
            assert event.position > last
            last = event.position
            count += 1
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert count == total
    print(f"\n200k: appended in {appended_in:.1f}s; read peak {peak / 1e6:.1f} MB"
          f" vs {holding_all / 1e6:.0f} MB to hold them all")
    assert peak < holding_all / 20, (peak, holding_all)


# SQLite specifics (the `sqlite_url` fixture: a store whose folders do not exist yet)


def test_sqlite_creates_folders_and_uses_wal_with_full_sync(sqlite_url, tmp_path):
    store = open_store(sqlite_url)
    try:
        assert store.path == tmp_path / "nested" / "deeper" / "events.db"
        assert store.path.exists()
        conn = store._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_sqlite_relative_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///rel/events.db")
    try:
        store.append(series(1))
        assert (tmp_path / "rel" / "events.db").exists()
    finally:
        store.close()


def test_sqlite_locked_database_is_unavailable_not_a_hang(sqlite_url):
    from eventreplay.store.sqlite import SQLiteEventStore

    store = open_store(sqlite_url)
    impatient = SQLiteEventStore(store.path, busy_timeout_s=0.2)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            impatient.append(series(1))
        assert time.monotonic() - started < 3
        blocker.execute("ROLLBACK")
        assert impatient.append(series(1)) == 1
    finally:
        blocker.close()
        impatient.close()
        store.close()


def test_sqlite_connections_per_thread_are_closed_on_close(sqlite_url):
    store = open_store(sqlite_url)
    store.append(series(3))
    counts = []
    threads = [threading.Thread(target=lambda: counts.append(store.count())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [3, 3, 3, 3]
    store.close()
    with pytest.raises(PersistenceError):
        store.count()


# EventStoreDB specifics (the `esdb_store_url` fixture: an empty store on the test EventStoreDB)


@pytest.mark.esdb
def test_esdb_ignores_job_records_and_foreign_events(esdb_store_url):
    from esdbclient import EventStoreDBClient, NewEvent as RawEvent, StreamState

    location = parse_store_url(esdb_store_url)
    uri, prefix = location.uri, location.stream_prefix
    store = open_store(esdb_store_url)
    raw = EventStoreDBClient(uri)
    try:
        ours = series(2)
        store.append(ours)
        raw.append_to_stream(f"{prefix}eventreplay-jobs", current_version=StreamState.ANY, events=[
            RawEvent(type="eventreplay.ReplayJob", data=b"{}",
                     metadata=json.dumps({"eventreplay": 1, "routing_key": "x", "exchange": "", "properties": {},
                                          "received_at": T0.isoformat(), "timestamp": T0.isoformat()}).encode()),
            RawEvent(type="OrderPlaced", data=b"{}", metadata=b"{}"),  # no marker: not archived by us
        ])
        raw.append_to_stream(f"other-{prefix}order-events", current_version=StreamState.ANY,
                             events=[RawEvent(type="OrderPlaced", data=b"{}")])
        assert ids(store.read()) == ids(ours)
        assert store.count(EventQuery(event_types=("OrderPlaced", "eventreplay.ReplayJob"))) == 2
        assert store.counts_by_type() == {"OrderPlaced": 2}
        streams = {e.stream_name for e in raw.read_all() if e.stream_name.startswith(prefix)}
        assert f"{prefix}order-events" in streams and not any(s.startswith("$") for s in streams)
    finally:
        raw.close()
        store.close()


@pytest.mark.esdb
def test_esdb_window_is_bounded_and_older_events_are_still_found(esdb_store_url):
    from eventreplay.store.esdb import EventStoreDBEventStore

    location = parse_store_url(esdb_store_url)
    uri, prefix = location.uri, location.stream_prefix
    writer = EventStoreDBEventStore(uri, stream_prefix=prefix, window_size=5, read_chunk=4)
    try:
        events = series(12)
        assert writer.append(events[:6]) == 6
        assert writer.append(events[6:]) == 6
        assert len(writer._window) == 5
        assert writer.get(events[0].event_id).event_id == events[0].event_id  # older than the window
        assert writer.get(str(uuid.uuid4())) is None
        assert writer.append(events[-3:]) == 0  # inside the window: exact
        assert [e.event_id for e in writer.read()] == ids(events)
    finally:
        writer.close()
