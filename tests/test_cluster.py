"""Quorum queues and a RabbitMQ cluster (README, "Quorum queues and clusters").

Marked `cluster`, on a 3-node cluster the session starts (tests/support/cluster.py), with faults caused
for real (rabbitmqctl stop_app on the node a program is connected to):
- the consumer (`python consumer.py`) loses its node mid-ingest of 20,000 events: every event is stored
  exactly once;
- a replay (`python replay_api.py`) loses its node mid-job: the job completes with exact counts, every
  event arrives in store order, re-sending at most the REPLAY_WINDOW in flight (docs/api.md
  "Guarantees"), and the stall is measured against REPLAY_GIVE_UP_S.

Unmarked, on the shared node: AMQP_URL with several nodes (parsing, the order they are tried) and
the queue type of the queues the Replay API declares.
"""
from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pika
import pytest

from eventreplay.api.broker_admin import BrokerAdmin
from eventreplay.broker import (
    amqp_urls, broker_address, connect, connected_node, connection_parameters, declare_queue, queue_arguments,
)
from eventreplay.settings import Settings
from eventreplay.simulator import EventFactory, SimulationPlan, SteadyClock, simulate
from eventreplay.store import EventQuery, open_store
from tests.support.amqp import consume_message_ids, declared_archive, delete_queue, publish, queue_depth
from tests.support.events import T0, new_event
from tests.support.ingest import consumer_env
from tests.support.names import archive_names, unique
from tests.support.processes import consumer_program, free_port, start_api
from tests.support.stores import seed
from tests.support.waiting import wait_for

WINDOW = 1000  # REPLAY_WINDOW: what a reconnect may send again


def queue_type(amqp_url: str, queue: str) -> str:
    """The type of an existing queue: a declare with our quorum arguments succeeds only on a quorum
    queue (a classic one answers 406 on x-queue-type and closes that channel)."""
    connection = pika.BlockingConnection([pika.URLParameters(url) for url in amqp_url.split(",")])
    try:
        connection.channel().queue_declare(queue, durable=True, arguments=queue_arguments("quorum"))
        return "quorum"
    except pika.exceptions.ChannelClosedByBroker as refused:
        assert refused.reply_code == 406 and "'x-queue-type'" in refused.reply_text, refused
        return "classic"
    finally:
        if connection.is_open:
            connection.close()


# -- AMQP_URL with several nodes (no cluster needed) ----------------------------------------------

def test_amqp_url_names_several_nodes_separated_by_commas():
    three = "amqp://u:p@h1:5681/%2F, amqp://u:p@h2:5682/%2F,amqp://u:p@h3:5683/%2F"
    settings = Settings(_env_file=None, amqp_url=three)
    assert amqp_urls(settings.amqp_url) == ["amqp://u:p@h1:5681/%2F", "amqp://u:p@h2:5682/%2F",
                                            "amqp://u:p@h3:5683/%2F"]
    params = connection_parameters(settings.amqp_url, client_name="c")
    assert [(p.host, p.port, p.connection_attempts) for p in params] == [("h1", 5681, 1), ("h2", 5682, 1),
                                                                          ("h3", 5683, 1)]
    assert broker_address(settings.amqp_url) == "h1:5681, h2:5682, h3:5683 (vhost '/')"


@pytest.mark.parametrize("bad, says", [
    ("amqp://u:p@h1:5681/%2F,", "node 2 of 2 is empty"),
    ("http://h1:5681/", "is not an amqp:// or amqps:// URL"),
    ("amqp://u:p@h1:5681/%2F,amqp://u:p,w@h2/", "%2C"),
    ("amqp://u:secret@h1:99999/", "Port out of range"),
])
def test_a_wrong_amqp_url_is_refused_with_a_clear_reason(bad, says):
    with pytest.raises(ValueError) as refused:
        Settings(_env_file=None, amqp_url=bad)
    assert says in str(refused.value)
    assert "secret" not in str(refused.value).split("input_value")[0]


def test_the_nodes_are_tried_in_turn(amqp_url):
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"  # nothing listens there
    first = amqp_urls(amqp_url)[0]
    connection = connect(f"{nowhere},{first}", client_name=unique("two-nodes"))
    try:
        assert connection.is_open
        assert connected_node(connection).endswith(f":{pika.URLParameters(first).port}")
    finally:
        connection.close()


def test_queue_type_accepts_quorum_and_classic_only():
    assert Settings(_env_file=None).queue_type == "quorum"
    assert Settings(_env_file=None, queue_type=" Classic ").queue_type == "classic"
    with pytest.raises(ValueError, match="must be one of quorum, classic"):
        Settings(_env_file=None, queue_type="stream")


def test_the_api_declares_its_queues_with_the_queue_type_and_keeps_one_of_the_other_type(amqp_url, caplog):
    fresh, existing = unique("replayed"), unique("replayed-classic")
    admin = BrokerAdmin(amqp_url, queue_type="quorum")
    try:
        with pika.BlockingConnection(pika.URLParameters(amqp_urls(amqp_url)[0])) as connection:
            channel = connection.channel()
            channel.queue_declare(existing, durable=True)  # classic, as earlier versions declared it
            channel.basic_publish("", existing, b"kept")
        assert admin.declare_queue(fresh) == "quorum"
        assert queue_type(amqp_url, fresh) == "quorum"
        with caplog.at_level("WARNING"):
            assert admin.declare_queue(existing) == "classic"  # no traceback, nothing moved
        assert queue_type(amqp_url, existing) == "classic" and queue_depth(amqp_url, existing) == 1
        assert any("exists as a classic queue" in r.getMessage() and "QUEUE_TYPE" in r.getMessage()
                   for r in caplog.records), caplog.text
    finally:
        admin.close()
        for queue in (fresh, existing):
            delete_queue(amqp_url, queue)


def test_a_quorum_queue_of_ours_never_drops_a_message_however_often_it_is_returned(amqp_url):
    # RabbitMQ 4.0-4.2 drop a message returned more than 20 times from a quorum queue without a
    # delivery limit; ours has one (DELIVERY_LIMIT), so a consumer may lose its connection any number
    # of times while it holds the message
    queue = unique("returned")
    try:
        with pika.BlockingConnection(pika.URLParameters(amqp_urls(amqp_url)[0])) as connection:
            assert declare_queue(connection, queue, "quorum") == "quorum"
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("", queue, b"kept", pika.BasicProperties(delivery_mode=2))
        for returned in range(25):
            with pika.BlockingConnection(pika.URLParameters(amqp_urls(amqp_url)[0])) as holder:
                method, properties, body = wait_for(lambda: (got := holder.channel().basic_get(queue))[0] and got,
                                                    timeout=10, what="the message back in the queue")
                assert body == b"kept" and method.redelivered == (returned > 0)
            # the connection closes holding it unacked: returned to the queue
        assert wait_for(lambda: queue_depth(amqp_url, queue) == 1, timeout=10, what="the message still there")
    finally:
        delete_queue(amqp_url, queue)


def test_a_quorum_queue_without_our_delivery_limit_is_used_as_it_is(amqp_url, caplog):
    queue = unique("their-quorum")
    try:
        with pika.BlockingConnection(pika.URLParameters(amqp_urls(amqp_url)[0])) as connection:
            connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
            with caplog.at_level("WARNING"):
                assert declare_queue(connection, queue, "quorum") == "quorum"
                assert declare_queue(connection, queue, "classic") == "quorum"  # and QUEUE_TYPE=classic keeps it
            assert connection.is_open
        messages = [r.getMessage() for r in caplog.records]
        assert any("another delivery limit" in m and "set_policy" in m for m in messages), messages
        assert any("exists as a quorum queue, QUEUE_TYPE asks for classic" in m for m in messages), messages
    finally:
        delete_queue(amqp_url, queue)


# -- on the 3-node cluster ------------------------------------------------------------------------

EVENTS = 20_000


@pytest.mark.cluster
def test_stopping_the_consumers_node_mid_ingest_stores_every_event_exactly_once(rabbit_cluster, tmp_path):
    cluster = rabbit_cluster
    names = archive_names(unique("cluster"))
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory(seed=311, clock=SteadyClock(T0)).take(EVENTS)
    expected = {event.event_id for event in events}
    consumer = consumer_program(consumer_env(cluster.amqp_url, store_url, names, QUEUE_TYPE="quorum"),
                                tmp_path / "consumer.log")
    # declared through node 0, as the consumer (which tries node 0 first): the queues' leaders are there
    with declared_archive(cluster.amqp_url, names), open_store(store_url) as store:
        assert queue_type(cluster.amqp_url, names["archive_queue"]) == "quorum"
        leader = cluster.quorum_leader(names["archive_queue"])  # client-local placement (3.x): node 0
        publish(cluster.url_from(1), names["exchange"], events[:EVENTS // 2])  # a backlog, confirmed
        reports = []
        late = threading.Thread(name="late-publisher", daemon=True, target=lambda: reports.append(simulate(
            cluster.url_from(2), events[EVENTS // 2:],
            SimulationPlan(exchange=names["exchange"], rate=0, count=EVENTS - EVENTS // 2, mandatory=True,
                           client_name="cluster-test-publisher"), stop=threading.Event())))
        try:
            consumer.start()
            late.start()  # the rest arrives during ingest, through node 2
            wait_for(lambda: store.count() >= 3_000, timeout=60, interval=0.02, what="3,000 events stored")
            node = cluster.wait_node_of("eventreplay-consumer")
            stored_before = store.count()
            cluster.stop_node(node)  # mid-ingest (and the archive queue's leader with it, when it is there)
            assert stored_before < EVENTS
            wait_for(lambda: store.count() >= stored_before + 2_000, timeout=60, interval=0.05,
                     what="ingest to go on without that node")
            moved_to = cluster.wait_node_of("eventreplay-consumer", other_than=node)
            cluster.start_node(node)
            late.join(timeout=120)
            assert not late.is_alive() and reports[0].confirmed == EVENTS - EVENTS // 2, reports
            wait_for(lambda: store.count() >= EVENTS and queue_depth(cluster.amqp_url, names["archive_queue"]) == 0,
                     timeout=120, interval=0.2, what=f"{EVENTS:,} events stored and the queue empty")
        finally:
            consumer.stop()
        stored = [event.event_id for event in store.read(EventQuery())]
    log = consumer.output()
    assert len(stored) == EVENTS and set(stored) == expected, "every event stored, exactly once"
    assert "Traceback" not in log, log[-3000:]
    assert log.count("consuming from") >= 2, "the consumer attached again, on another node"
    print(f"stopped node {node} (the archive queue's leader: node {leader}) after {stored_before:,} stored; the "
          f"consumer went on on node {moved_to}")


@pytest.mark.cluster
def test_stopping_the_replays_node_mid_job_completes_it_in_order_with_exact_counts(rabbit_cluster, tmp_path):
    cluster = rabbit_cluster
    count = 60_000
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(store_url) as store:
        seed(store, [new_event("OrderPlaced", n=i) for i in range(count)], batch=10_000)
        ids = [event.event_id for event in store.read(EventQuery())]
        digest = hashlib.sha256(b"".join(event.body for event in store.read(EventQuery()))).hexdigest()
    queue = unique("cluster-replay")
    api = start_api(store_url, cluster.amqp_url, tmp_path / "api.log", LOG_LEVEL="INFO", QUEUE_TYPE="quorum",
                    REPLAY_QUEUE="", REPLAY_WINDOW=str(WINDOW))
    give_up_s = 300.0  # REPLAY_GIVE_UP_S, the default
    progress: list[tuple[float, int]] = []  # (monotonic time, confirmed), sampled every few ms
    sampled: list[dict] = []
    try:
        job = api.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue,
                                               "create_queue": True}).json()
        assert "id" in job, job

        def sample() -> None:  # in a thread of its own, from the start to the end of the job
            with httpx.Client(base_url=api.url, timeout=30) as client:
                while True:
                    now = client.get(f"/replays/{job['id']}").json()
                    progress.append((time.monotonic(), now["confirmed"]))
                    if now["state"] != "running" and now["state"] != "pending":
                        sampled.append(now)
                        return
                    time.sleep(0.005)

        sampler = threading.Thread(target=sample, name="job-sampler", daemon=True)
        sampler.start()
        node = cluster.wait_node_of(f"eventreplay-replay-{job['id'][:8]}")
        wait_for(lambda: progress and progress[-1][1] >= 5_000, timeout=60, interval=0.005, what="5,000 confirmed")
        assert queue_type(cluster.amqp_url, queue) == "quorum"
        stopped_at, confirmed_then = time.monotonic(), progress[-1][1]
        cluster.stop_node(node)  # (rabbitmqctl takes a second to start: the job runs on meanwhile)
        sampler.join(timeout=120)
        assert sampled, "the job did not end within 120 s"
        done = sampled[0]
        cluster.start_node(node)
    finally:
        api.stop()
    log = api.output()
    lost = [line for line in log.splitlines() if "broker connection lost" in line]
    went_on = [line for line in log.splitlines() if "continuing after the fault (RabbitMQ at" in line]
    assert lost and went_on, f"the job lost its node and went on through another one:\n{log[-3000:]}"
    moved_to = int(went_on[-1].rsplit(":", 1)[1].rstrip(")"))
    assert moved_to in cluster.ports and moved_to != cluster.ports[node], went_on
    assert done["state"] == "completed", done
    assert done["matched"] == count and done["confirmed"] == count and done["reconnecting"] is None, done
    assert done["digest"] == digest
    received = consume_message_ids(cluster.amqp_url, queue, at_least=count)
    delete_queue(cluster.amqp_url, queue)
    repeats = len(received) - len(ids)
    assert set(received) == set(ids), "every matched event arrived"
    assert 0 <= repeats <= WINDOW, f"{repeats} events sent twice; at most the {WINDOW} in flight may be"
    assert list(dict.fromkeys(received)) == ids, "in store order"

    # the stall: the longest time `confirmed` stood still after the stop began (sampled every few ms),
    # and the rate before the stop and after the stall
    stall, stall_end, still_since, last = 0.0, stopped_at, stopped_at, confirmed_then
    for t, value in (point for point in progress if point[0] >= stopped_at):
        if value != last:
            if t - still_since > stall:
                stall, stall_end = t - still_since, t
            still_since, last = t, value
    before = [point for point in progress if point[0] < stopped_at and point[1] > 0]
    after = [point for point in progress if point[0] >= stall_end]
    assert stall < give_up_s, "the stop cost less than the give-up time"
    if _span(before) >= 0.5 and _span(after) >= 0.5:  # then on at full speed (loosely: the machine is shared)
        assert _rate(after) >= 0.25 * _rate(before), (_rate(before), _rate(after))
    print(f"\nnode {node} stopped at {confirmed_then:,} confirmed; the job went on through port {moved_to}; longest "
          f"stall {stall:.2f} s (give-up time {give_up_s:.0f} s); {repeats} sent twice; {_rate(before):,.0f} "
          f"events/s before, {_rate(after):,.0f} after")


def _rate(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2 or samples[-1][0] == samples[0][0]:
        return 0.0
    return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])


def _span(samples: list[tuple[float, int]]) -> float:
    return samples[-1][0] - samples[0][0] if len(samples) >= 2 else 0.0
