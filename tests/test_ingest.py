"""The consumer against the real broker and each real store: simulator -> consumer -> store."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import pika
import pytest

from eventreplay.ingest.triage import DeadLetter, triage
from eventreplay.broker import connect_until_stopped
from eventreplay.retrying import RetryPolicy
from eventreplay.schema import parse_event
from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery, PersistenceError, StoreUnavailable, open_store
from tests.support.amqp import close_broker_connections, delete_topology, drain, publish, publish_raw, queue_depth
from tests.support.ingest import consumer_env, consumer_settings, running_consumer
from tests.support.processes import ROOT, consumer_program
from tests.support.stores import with_stream_prefix
from tests.support.waiting import wait_for


def stored_by_id(store) -> dict:
    return {event.event_id: event for event in store.read(EventQuery())}


def test_simulated_events_are_stored_exactly_once(amqp_url, store_url, store, archive):
    events = EventFactory(seed=7).take(2000)
    settings = consumer_settings(amqp_url, store_url, archive, batch_size=200)
    with running_consumer(settings, store) as consumer:
        publish(amqp_url, archive["exchange"], events)
        publish(amqp_url, archive["exchange"], events[:150])  # a producer's resend: stored once
        wait_for(lambda: consumer.stats.archived >= 2150, timeout=90, what="2,150 deliveries archived")

    assert store.count() == 2000
    stored = stored_by_id(store)
    assert set(stored) == {event.event_id for event in events}
    for event in events:
        kept = stored[event.event_id]
        assert kept.body == event.body  # byte for byte
        assert kept.event_type == event.event_type
        assert kept.routing_key == event.routing_key
        assert kept.exchange == archive["exchange"]
        assert kept.timestamp == parse_event(event.body).timestamp
        assert kept.properties["message_id"] == event.event_id
        assert kept.properties["type"] == event.event_type
        assert kept.properties["delivery_mode"] == 2
    assert consumer.stats.stored == 2000 and consumer.stats.duplicates == 150
    assert queue_depth(amqp_url, archive["archive_queue"]) == 0


def test_a_message_in_the_prototypes_format_is_stored(amqp_url, store_url, store, archive):
    event_id = str(uuid.uuid4())
    naive = datetime.utcnow()  # noqa: DTZ003 - exactly what the prototype sent
    body = json.dumps({
        "event_id": event_id, "event_type": "ProductViewed", "timestamp": naive.isoformat(),
        "user_id": "user_17", "product_id": "prod_3",
    }).encode()
    with running_consumer(consumer_settings(amqp_url, store_url, archive), store):
        publish_raw(amqp_url, archive["exchange"], [("product-events", body, None)])
        kept = wait_for(lambda: store.get(event_id), timeout=30, what="the prototype's message stored")

    assert kept.body == body
    assert kept.event_type == "ProductViewed"
    assert kept.routing_key == "product-events"
    assert kept.timestamp == naive.replace(tzinfo=timezone.utc)


def test_invalid_messages_go_to_the_dead_letter_queue_and_the_rest_is_stored(amqp_url, store_url, store, archive):
    valid = EventFactory(seed=3).take(40)
    order = json.dumps({
        "event_id": str(uuid.uuid4()), "event_type": "OrderPlaced", "timestamp": "2024-05-01T12:00:00",
        "order_id": "o-1", "total_amount": "lots",
    }).encode()
    unknown_type = json.dumps({
        "event_id": str(uuid.uuid4()), "event_type": "GiftCardRedeemed", "timestamp": "2024-05-01T12:00:00Z",
    }).encode()
    invalid = [
        ("order-events", b"this is not JSON {", "not valid JSON"),
        ("user-auth", json.dumps({"event_id": str(uuid.uuid4()), "timestamp": "2024-05-01T12:00:00"}).encode(),
         "event_type"),
        ("order-events", order, "total_amount"),
    ]
    messages = [(e.routing_key, e.body, e.properties) for e in valid[:10]]
    for n, (routing_key, body, _) in enumerate(invalid):
        messages.append((routing_key, body, pika.BasicProperties(message_id=f"bad-{n}", headers={"origin": "test"})))
        messages += [(e.routing_key, e.body, e.properties) for e in valid[10 * (n + 1):10 * (n + 2)]]
    messages.append(("misc-events", unknown_type, None))

    with running_consumer(consumer_settings(amqp_url, store_url, archive), store) as consumer:
        publish_raw(amqp_url, archive["exchange"], messages)
        wait_for(lambda: consumer.stats.archived >= 41 and consumer.stats.dead_lettered >= 3, timeout=30,
                 what="41 events stored and 3 dead-lettered")

    assert store.count() == 41
    assert {e.event_id for e in store.read(EventQuery())} >= {e.event_id for e in valid}
    assert store.counts_by_type().get("GiftCardRedeemed") == 1  # unknown types are archived
    letters = drain(amqp_url, archive["dead_letter_queue"], expected=3)
    assert len(letters) == 3
    for (_routing_key, properties, body), (routing_key, sent, reason_part) in zip(letters, invalid):
        assert body == sent
        headers = properties.headers
        assert reason_part in headers["x-dead-letter-reason"]
        assert headers["x-original-routing-key"] == routing_key
        assert headers["x-original-exchange"] == archive["exchange"]
        assert headers["origin"] == "test"  # the original headers are kept
    assert [p.message_id for _m, p, _b in letters] == ["bad-0", "bad-1", "bad-2"]
    assert queue_depth(amqp_url, archive["archive_queue"]) == 0


def test_bodies_python_cannot_parse_are_dead_lettered_and_the_consumer_keeps_storing(
        amqp_url, store_url, store, archive):
    # Each of these once escaped parse_event as RecursionError / ValueError / OverflowError, left
    # pika's loop and ended the consumer; redelivered, it ended the next start the same way.
    valid = EventFactory(seed=4).take(50)

    def envelope(**fields) -> bytes:
        return json.dumps({"event_id": str(uuid.uuid4()), "event_type": "OrderPlaced",
                           "timestamp": "2024-05-01T12:00:00Z", **fields}).encode()

    invalid = [
        ("order-events", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("order-events", envelope()[:-1] + b', "total_amount": ' + b"7" * 5000 + b"}", "4300 digits"),
        ("order-events", envelope(timestamp="0001-01-01T00:00:00+01:00"), "out of range"),
        ("misc-events", envelope(event_type="SomethingNew", timestamp="9999-12-31T23:59:59-05:00"), "out of range"),
    ]
    messages = [(e.routing_key, e.body, e.properties) for e in valid[:10]]
    for n, (routing_key, body, _) in enumerate(invalid):
        messages.append((routing_key, body, pika.BasicProperties(message_id=f"bad-{n}")))
        messages += [(e.routing_key, e.body, e.properties) for e in valid[10 * (n + 1):10 * (n + 2)]]

    with running_consumer(consumer_settings(amqp_url, store_url, archive, batch_size=7), store) as consumer:
        publish_raw(amqp_url, archive["exchange"], messages)
        wait_for(lambda: consumer.stats.archived >= 50 and consumer.stats.dead_lettered >= 4, timeout=30,
                 what="50 events stored and 4 dead-lettered")
        assert consumer.consuming.is_set()  # still attached: nothing ended it
        # and it goes on storing what comes next
        later = EventFactory(seed=44).take(5)
        publish(amqp_url, archive["exchange"], later)
        wait_for(lambda: consumer.stats.archived >= 55, timeout=30, what="5 later events stored")

    assert {e.event_id for e in store.read(EventQuery())} == {e.event_id for e in valid + later}
    letters = drain(amqp_url, archive["dead_letter_queue"], expected=4)
    assert [p.message_id for _m, p, _b in letters] == ["bad-0", "bad-1", "bad-2", "bad-3"]
    for (_routing_key, properties, body), (routing_key, sent, reason_part) in zip(letters, invalid):
        assert body == sent
        assert reason_part in properties.headers["x-dead-letter-reason"], properties.headers
        assert properties.headers["x-original-routing-key"] == routing_key
    assert queue_depth(amqp_url, archive["archive_queue"]) == 0


def test_triage_dead_letters_what_it_cannot_validate_instead_of_raising():
    # a body of the wrong type fails inside json.loads with a TypeError parse_event does not expect
    method = pika.spec.Basic.Deliver(delivery_tag=1, routing_key="order-events", exchange="x")
    verdict = triage(method, pika.BasicProperties(message_id="m-1"), 12345, datetime.now(timezone.utc))
    verdict_none = triage(method, pika.BasicProperties(), None, datetime.now(timezone.utc))
    for letter in (verdict, verdict_none):
        assert isinstance(letter, DeadLetter), letter
        assert letter.reason.startswith("could not be validated: TypeError: "), letter.reason
        assert letter.routing_key == "order-events" and letter.exchange == "x"


@pytest.mark.parametrize("conflict", ["queue-arguments", "exchange-type"])
def test_a_topology_rabbitmq_refuses_for_good_exits_2_with_one_clear_message(
        amqp_url, store_url, archive, tmp_path, conflict):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        if conflict == "queue-arguments":  # the archive queue exists with other arguments
            channel.queue_declare(archive["archive_queue"], durable=True, arguments={"x-max-length": 10})
        else:  # the exchange exists with another type
            channel.exchange_declare(archive["exchange"], exchange_type="fanout", durable=True)
    finally:
        connection.close()
    env = consumer_env(amqp_url, store_url, archive)
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen([sys.executable, "consumer.py"], cwd=ROOT, env=env, stdout=out, stderr=err)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"the consumer still retries after 30 s:\n{stderr.read_text(errors='replace')[-3000:]}")
    errors = stderr.read_text(errors="replace")
    assert code == 2, errors
    refusals = [line for line in errors.splitlines() if "refuses the archive topology" in line]
    assert len(refusals) == 1, errors
    assert "406" in refusals[0] and "PRECONDITION_FAILED" in refusals[0] and "Not retrying" in refusals[0]
    assert " ERROR " in refusals[0]
    assert "lost the connection" not in errors and "Traceback" not in errors, errors


@pytest.mark.parametrize("existing, asked", [("classic", "quorum"), ("quorum", "classic")])
def test_an_archive_queue_of_the_other_type_is_used_as_it_is_and_nothing_is_lost(
        amqp_url, store_url, store, archive, tmp_path, existing, asked):
    # a user upgrading: the queues exist with the other type (and hold messages); the consumer says
    # so once, keeps them as they are, and archives what they hold
    events = EventFactory(seed=17).take(300)
    arguments = {"x-queue-type": "quorum"} if existing == "quorum" else None
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.exchange_declare(archive["exchange"], exchange_type="topic", durable=True)
        for queue in (archive["archive_queue"], archive["dead_letter_queue"]):
            channel.queue_declare(queue, durable=True, arguments=arguments)
        channel.queue_bind(archive["archive_queue"], archive["exchange"], routing_key="#")
    publish(amqp_url, archive["exchange"], events)
    process = consumer_program(consumer_env(amqp_url, store_url, archive, QUEUE_TYPE=asked), tmp_path / "consumer.log")
    process.start()
    try:
        wait_for(lambda: store.count() == 300 and queue_depth(amqp_url, archive["archive_queue"]) == 0, timeout=30,
                 what="the 300 waiting events stored")
        publish(amqp_url, archive["exchange"], EventFactory(seed=18).take(10))  # and what comes next
        wait_for(lambda: store.count() == 310, timeout=30, what="the next 10 stored")
    finally:
        process.signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    log = process.output()
    assert code == 0, log
    warnings = [line for line in log.splitlines() if " WARNING " in line and "QUEUE_TYPE asks for" in line]
    assert len(warnings) == 2, log  # one per queue
    assert f"exists as a {existing} queue, QUEUE_TYPE asks for {asked}" in warnings[0]
    assert "Traceback" not in log and "refuses" not in log, log


def test_a_replayed_message_is_not_archived_again(amqp_url, store_url, store, archive):
    replayed, after = EventFactory(seed=5).take(2)
    marked = pika.BasicProperties(message_id=replayed.event_id, headers={"x-replay-id": "job-1"})
    with running_consumer(consumer_settings(amqp_url, store_url, archive), store) as consumer:
        publish_raw(amqp_url, archive["exchange"], [
            (replayed.routing_key, replayed.body, marked), (after.routing_key, after.body, after.properties),
        ])
        wait_for(lambda: store.get(after.event_id), timeout=30, what="the message after the replay stored")
        wait_for(lambda: consumer.stats.replay_skipped == 1, timeout=10, what="the replay counted")

    assert store.get(replayed.event_id) is None
    assert store.count() == 1
    assert queue_depth(amqp_url, archive["archive_queue"]) == 0  # acked, not left behind


class FailingStore:
    """A real store whose first `failures` appends fail with `error` (StoreUnavailable: an outage;
    PersistenceError: a broken store), recording when each append was tried."""

    def __init__(self, store, failures: int, error: type[Exception], reason: str):
        self.store, self.failures, self.error, self.reason, self.tried_at = store, failures, error, reason, []

    @property
    def attempts(self) -> int:
        return len(self.tried_at)

    def append(self, events):
        self.tried_at.append(time.monotonic())
        if self.failures:
            self.failures -= 1
            raise self.error(self.reason)
        return self.store.append(events)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_store_outage_acks_nothing_and_everything_is_stored_afterwards(amqp_url, tmp_path, names):
    from eventreplay.store import open_store

    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory(seed=11).take(300)
    try:
        with open_store(store_url) as real:
            flaky = FailingStore(real, failures=2, error=StoreUnavailable, reason="simulated outage")
            with running_consumer(consumer_settings(amqp_url, store_url, names, batch_size=50), flaky) as consumer:
                publish(amqp_url, names["exchange"], events)
                wait_for(lambda: real.count() == 300, timeout=60, what="all 300 stored after the outage")
                wait_for(lambda: queue_depth(amqp_url, names["archive_queue"]) == 0, timeout=10,
                         what="the queue to be empty")
            assert flaky.attempts > 2
            assert consumer.stats.stored == 300
            # waited out in place: the connection was kept, so nothing came back a second time
            assert consumer.stats.redelivered == 0 and consumer.stats.duplicates == 0
            assert {e.event_id for e in real.read(EventQuery())} == {e.event_id for e in events}
    finally:
        delete_topology(amqp_url, names)


class StoreWithOutage:
    """A real store that is unavailable (appends and write probes) while `down` is set."""

    def __init__(self, store):
        self.store, self.down, self.failed_appends = store, threading.Event(), 0

    def append(self, events):
        if self.down.is_set():
            self.failed_appends += 1
            raise StoreUnavailable("simulated outage")
        return self.store.append(events)

    def probe_write(self):
        if self.down.is_set():
            raise StoreUnavailable("simulated outage")
        self.store.probe_write()

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_the_broker_dropping_the_connection_during_a_store_outage_ends_the_wait_and_loses_nothing(
        amqp_url, tmp_path, names):
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory(seed=13).take(300)
    name = f"consumer-{uuid.uuid4().hex[:8]}"
    settings = consumer_settings(amqp_url, store_url, names, batch_size=50)
    try:
        with open_store(store_url) as real:
            store = StoreWithOutage(real)
            store.down.set()
            with running_consumer(settings, store, client_name=name) as consumer:
                publish(amqp_url, names["exchange"], events)
                wait_for(lambda: store.failed_appends >= 1, timeout=30, what="a batch waiting for the store")
                assert close_broker_connections(amqp_url, name) == 1
                # the writer stops waiting (acks are impossible now), the consumer reconnects and
                # gets the unacked messages again
                wait_for(lambda: consumer.stats.redelivered >= 300, timeout=30, what="300 redeliveries")
                store.down.clear()
                wait_for(lambda: real.count() == 300 and queue_depth(amqp_url, names["archive_queue"]) == 0,
                         timeout=30, what="all 300 stored once the store is back")
            assert {e.event_id for e in real.read(EventQuery())} == {e.event_id for e in events}
            assert consumer.stats.stored == 300
    finally:
        delete_topology(amqp_url, names)


def test_store_failures_reconnect_ever_later_until_a_batch_is_acked(amqp_url, tmp_path, names):
    # Such a failure drops the connection (everything unacked is redelivered); the reconnects must
    # not come at the rate of successful connects but at a delay that grows until progress is made.
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory(seed=12).take(60)
    settings = consumer_settings(amqp_url, store_url, names, batch_size=50)
    try:
        with open_store(store_url) as real:
            broken = FailingStore(real, failures=3, error=PersistenceError, reason="simulated broken store")
            with running_consumer(settings, broken) as consumer:
                publish(amqp_url, names["exchange"], events[:30])
                wait_for(lambda: real.count() == 30, timeout=30, what="the first 30 stored after 3 failures")
                # three failed tries, then the fourth stores (the 30 may arrive in more than one batch then:
                # a quorum queue redelivers in chunks)
                gaps = [later - earlier for earlier, later in zip(broken.tried_at, broken.tried_at[1:])][:3]
                assert len(gaps) == 3 and gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0, gaps
                # progress (a batch acked) resets the delay: the next failure is retried soon again
                broken.failures, broken.tried_at = 1, []
                publish(amqp_url, names["exchange"], events[30:])
                wait_for(lambda: real.count() == 60, timeout=30, what="the other 30 stored after 1 failure")
                assert broken.tried_at[1] - broken.tried_at[0] < 2.0, broken.tried_at
            assert consumer.stats.stored == 60
    finally:
        delete_topology(amqp_url, names)


def test_a_successful_connect_leaves_the_callers_delays_growing(amqp_url):
    policy = RetryPolicy(first=0.5)
    policy.failed(), policy.failed()
    connection = connect_until_stopped(amqp_url, client_name="backoff-test", policy=policy)
    try:
        assert connection is not None
    finally:
        connection.close()
    assert policy.failed() == 2.0  # not back to 0.5: only the caller knows about progress
    policy.progressed()
    assert policy.failed() == 0.5


def test_the_consumer_reconnects_when_the_broker_drops_its_connection(amqp_url, store_url, store, archive):
    events = EventFactory(seed=11).take(1000)
    name = f"consumer-{uuid.uuid4().hex[:8]}"
    settings = consumer_settings(amqp_url, store_url, archive, batch_size=100)
    with running_consumer(settings, store, client_name=name) as consumer:
        publish(amqp_url, archive["exchange"], events[:500])
        wait_for(lambda: consumer.stats.stored >= 100, timeout=60, what="a first batch stored")
        assert close_broker_connections(amqp_url, name) == 1
        publish(amqp_url, archive["exchange"], events[500:])
        wait_for(lambda: store.count() >= 1000 and queue_depth(amqp_url, archive["archive_queue"]) == 0,
                 timeout=90, what="every event stored after the reconnect")
    assert store.count() == 1000  # nothing lost, nothing stored twice (unacked messages were redelivered)
    assert set(stored_by_id(store)) == {event.event_id for event in events}


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_an_event_too_large_for_eventstoredb_is_dead_lettered_and_the_rest_stored(
        amqp_url, esdb_base_url, archive, writer):
    # EventStoreDB refuses appends over 1 MiB: such an event must not block the archive forever
    # (redelivered, refused, redelivered...); it goes to the dead-letter queue with the reason. The
    # writer process (WRITER_PROCESS) says which events were refused across its pipe.
    store_url = with_stream_prefix(esdb_base_url, f"big-{uuid.uuid4().hex[:8]}-")
    valid = EventFactory(seed=5).take(30)
    big = json.dumps({
        "event_id": str(uuid.uuid4()), "event_type": "ProductReviewed", "timestamp": "2024-05-01T12:00:00Z",
        "review_text": "a" * 1_500_000,
    }).encode()
    messages = [(e.routing_key, e.body, e.properties) for e in valid[:15]]
    messages.append(("product-events", big, pika.BasicProperties(message_id="big-one")))
    messages += [(e.routing_key, e.body, e.properties) for e in valid[15:]]
    with open_store(store_url) as store:
        with running_consumer(consumer_settings(amqp_url, store_url, archive), store,
                               store_url=store_url if writer == "process" else None) as consumer:
            publish_raw(amqp_url, archive["exchange"], messages)
            wait_for(lambda: consumer.stats.stored >= 30 and consumer.stats.dead_lettered >= 1, timeout=60,
                     what="30 events stored and the big one dead-lettered")
        assert {e.event_id for e in store.read(EventQuery())} == {e.event_id for e in valid}
    letters = drain(amqp_url, archive["dead_letter_queue"], expected=1)
    assert [body for _m, _p, body in letters] == [big]
    assert "refused by the event store" in letters[0][1].headers["x-dead-letter-reason"]
    assert queue_depth(amqp_url, archive["archive_queue"]) == 0
