"""The event simulator: reproducible, coherent lifecycles, valid events, and the CLI's publishing."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict

import pika
import pytest

from eventreplay.schema import EVENT_TYPES, parse_event, routing_key_for
from eventreplay.simulator import EventFactory, PendingEvents, SimulationPlan, SteadyClock, simulate
from tests.support.amqp import close_broker_connections, declared_archive, drain, queue_depth
from tests.support.events import T0
from tests.support.processes import ROOT
from tests.support.waiting import wait_for

LIFECYCLE = ("OrderPlaced", "PaymentProcessed", "OrderShipped", "OrderDelivered")


def test_the_same_seed_gives_the_same_events():
    first = EventFactory(seed=42, clock=SteadyClock(T0)).take(1000)
    again = EventFactory(seed=42, clock=SteadyClock(T0)).take(1000)
    other = EventFactory(seed=43, clock=SteadyClock(T0)).take(1000)
    assert [e.body for e in first] == [e.body for e in again]
    assert [e.event_id for e in first] != [e.event_id for e in other]
    # with the wall clock only the timestamps differ
    live = EventFactory(seed=42).take(1000)
    strip = lambda events: [{k: v for k, v in e.payload().items() if k not in ("timestamp", "delivered_at")}
                            for e in events]
    assert strip(live) == strip(first)


def test_every_event_is_valid_and_carries_the_wire_contract(simulated_payloads):
    events = EventFactory(seed=42).take(3000)
    assert {e.event_type for e in events} == set(EVENT_TYPES)  # all 13 types occur
    for event in events:
        parsed = parse_event(event.body)
        assert parsed.known_type and parsed.event_id == event.event_id and parsed.event_type == event.event_type
        assert parsed.timestamp.tzinfo is not None and "+00:00" in event.payload()["timestamp"]
        assert event.routing_key == routing_key_for(event.event_type)
        props = event.properties
        assert (props.message_id, props.type, props.delivery_mode, props.content_type) == (
            event.event_id, event.event_type, 2, "application/json")
        assert props.timestamp == int(parsed.timestamp.timestamp())
    assert len({e.event_id for e in events}) == len(events)


def test_orders_follow_their_lifecycle(simulated_payloads):
    seen: dict[str, list[str]] = defaultdict(list)
    placed: dict[str, dict] = {}
    for payload in simulated_payloads:
        if payload["event_type"] in LIFECYCLE:
            seen[payload["order_id"]].append(payload["event_type"])
        if payload["event_type"] == "OrderPlaced":
            placed[payload["order_id"]] = payload
            total = sum(item["quantity"] * item["price"] for item in payload["items"])
            assert payload["total_amount"] == pytest.approx(total)
        if payload["event_type"] == "PaymentProcessed":
            assert payload["amount"] == placed[payload["order_id"]]["total_amount"]
            assert payload["user_id"] == placed[payload["order_id"]]["user_id"]
    assert sum(1 for steps in seen.values() if steps == list(LIFECYCLE)) >= 50  # many orders delivered
    for order_id, steps in seen.items():
        assert steps == list(LIFECYCLE[: len(steps)]), (order_id, steps)  # in order, none skipped


def test_sessions_and_reviews_are_coherent(simulated_payloads):
    open_sessions: dict[str, str] = {}
    registered, delivered_to = set(), defaultdict(set)
    orders = {}
    for payload in simulated_payloads:
        kind, user = payload["event_type"], payload.get("user_id")
        if kind == "UserRegistered":
            assert user not in registered
            registered.add(user)
        elif kind == "UserLoggedIn":
            assert user not in open_sessions  # one session per user at a time
            open_sessions[user] = payload["session_id"]
        elif kind == "UserLoggedOut":
            assert open_sessions.pop(user) == payload["session_id"]
        elif kind in ("ProductViewed", "ProductAddedToCart", "OrderPlaced", "ProductReviewed"):
            assert user in open_sessions, f"{kind} outside a session"
        if kind == "OrderPlaced":
            orders[payload["order_id"]] = payload
        elif kind == "OrderDelivered":
            delivered_to[user] |= {item["product_id"] for item in orders[payload["order_id"]]["items"]}
        elif kind == "ProductReviewed":
            assert payload["product_id"] in delivered_to[user], "a review of something not received"


def test_types_filter_keeps_only_those_types_from_the_same_stream():
    wanted = {"OrderShipped", "OrderDelivered"}
    full = EventFactory(seed=9, clock=SteadyClock(T0)).take(4000)
    only = EventFactory(seed=9, clock=SteadyClock(T0), types=wanted).take(100)
    assert {e.event_type for e in only} == wanted
    assert [e.body for e in only] == [e.body for e in full if e.event_type in wanted][:100]
    with pytest.raises(ValueError, match="NoSuchEvent"):
        EventFactory(types=["NoSuchEvent"])


def simulator(amqp_url, names, *args, tmp_path):
    env = dict(os.environ, AMQP_URL=amqp_url, EXCHANGE=names["exchange"], LOG_LEVEL="INFO")
    log = open(tmp_path / "simulator.log", "wb")
    return subprocess.Popen([sys.executable, "event_simulator.py", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT), tmp_path / "simulator.log"


def confirmed_in(log_text: str) -> int:
    """The distinct confirmed events the simulator's summary line reports."""
    return int(re.search(r"(\d+) distinct events confirmed", log_text).group(1))


def test_the_cli_publishes_a_seeded_count_with_properties(amqp_url, bound_archive, tmp_path):
    process, log = simulator(amqp_url, bound_archive, "--rate", "0", "--count", "300", "--seed", "42",
                             tmp_path=tmp_path)
    assert process.wait(timeout=60) == 0, log.read_text()
    assert "300 distinct events confirmed by the broker in 300 sends" in log.read_text()
    expected = EventFactory(seed=42).take(300)
    got = drain(amqp_url, bound_archive["archive_queue"], expected=300)
    assert [json.loads(body)["event_id"] for _m, _p, body in got] == [e.event_id for e in expected]
    routing_key, props, body = got[0]
    assert routing_key == expected[0].routing_key
    assert (props.message_id, props.type, props.delivery_mode, props.content_type) == (
        expected[0].event_id, expected[0].event_type, 2, "application/json")


def test_the_cli_stops_cleanly_on_sigterm(amqp_url, bound_archive, tmp_path):
    process, log = simulator(amqp_url, bound_archive, "--rate", "50", tmp_path=tmp_path)  # forever
    wait_for(lambda: queue_depth(amqp_url, bound_archive["archive_queue"]) >= 20, timeout=30,
             what="20 events published")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0  # no --count: stopping is the normal end
    text = log.read_text()
    assert "Traceback" not in text
    confirmed = confirmed_in(text)
    assert confirmed >= 20
    wait_for(lambda: queue_depth(amqp_url, bound_archive["archive_queue"]) == confirmed, timeout=10,
             what="every confirmed event in the queue")


def test_the_cli_waits_for_an_unreachable_broker_with_a_clear_line(names, tmp_path):
    # stopped while waiting, before any of its --count was sent: it fails, saying so
    process, log = simulator("amqp://guest:guest@127.0.0.1:1/%2F", names, "--count", "5", tmp_path=tmp_path)
    wait_for(lambda: "is not reachable" in log.read_text(), timeout=15, what="the retry log line")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) != 0
    text = log.read_text()
    assert "stopped before the count: 0 of 5 events confirmed" in text
    assert "Traceback" not in text


# connection losses: every event of the count arrives, re-sends bounded ------------------------------
RUN = 2000
WINDOW = 1000  # ConfirmedPublisher's default: at most this many sent and unconfirmed at any time
FLUSH_EVERY = 64  # ConfirmedPublisher's default: messages buffered between socket writes


def event_ids_in(amqp_url: str, queue: str) -> list[str]:
    """The event_id of every message in `queue` (consumed), duplicates included."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        expected = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=1000)
        ids: list[str] = []
        for method, _properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=15):
            if method is None:  # fewer came than counted: the caller's assertions say which are missing
                break
            ids.append(json.loads(body)["event_id"])
            if len(ids) == expected:
                break
        return ids
    finally:
        connection.close()


class BrokerClosesTheConnection:
    """Fault injection for real: RabbitMQ closes the simulator's connection (management API), once,
    at a chosen moment. `unconfirmed_bound` is then the most events that can have been sent and not
    confirmed at that loss: the most the simulator may send again."""

    def __init__(self, amqp_url: str, client_name: str):
        self.amqp_url, self.client_name = amqp_url, client_name
        self.unconfirmed_bound: int | None = None  # None: not closed yet

    def close(self, unconfirmed_bound: int) -> None:
        assert close_broker_connections(self.amqp_url, self.client_name) == 1
        self.unconfirmed_bound = unconfirmed_bound

    def at_event(self, k: int, events):
        """`events`, the connection closed when the k-th is taken (so before it is published)."""
        for taken, event in enumerate(events, start=1):
            if taken == k:
                # the k-th fails to go out; earlier ones may be unconfirmed, and the publisher finds
                # the connection gone only when it writes (every FLUSH_EVERY messages)
                self.close(min(taken, WINDOW) + FLUSH_EVERY)
            yield event

    def when_all_sent(self, total: int):
        """A progress callback closing the connection once `total` are sent: the publisher then
        waits for the final confirms."""
        def progress(published: int, confirmed: int) -> None:
            if published >= total and self.unconfirmed_bound is None:
                self.close(published - confirmed)
        return progress


@pytest.mark.parametrize("lost_at", [1, 501, RUN, "final confirms"],
                         ids=["before the first event", "at event 501", "at the last event",
                              "while waiting for the final confirms"])
def test_a_lost_connection_loses_no_event_and_counts_none_twice(amqp_url, bound_archive, lost_at):
    client_name = f"{bound_archive['exchange']}-simulator"  # the one connection the broker closes
    fault = BrokerClosesTheConnection(amqp_url, client_name)
    events = EventFactory(seed=501)
    expected = {event.event_id for event in EventFactory(seed=501).take(RUN)}
    plan = SimulationPlan(exchange=bound_archive["exchange"], rate=0, count=RUN, mandatory=True,
                          client_name=client_name)
    if lost_at == "final confirms":
        report = simulate(amqp_url, events, plan, stop=threading.Event(), progress=fault.when_all_sent(RUN))
    else:
        report = simulate(amqp_url, fault.at_event(lost_at, events), plan, stop=threading.Event())

    assert fault.unconfirmed_bound is not None and report.connections_lost == 1
    assert report.confirmed == RUN
    # exactly the events unconfirmed at the loss went out twice, and no more than could be
    assert report.published == RUN + report.resent
    assert report.resent <= fault.unconfirmed_bound
    ids = event_ids_in(amqp_url, bound_archive["archive_queue"])
    assert set(ids) == expected  # every one of the 2,000 arrived
    assert len(ids) - len(expected) <= report.resent  # the duplicates: some re-sends had arrived before


def test_events_to_send_again_go_first_in_their_order_and_a_failed_round_spoils_nothing():
    stream = EventFactory(seed=3).take(6)
    pending = PendingEvents(stream)

    def round_lost_after(taken: int) -> None:
        """Like publish_events: iterates what it is given, and ends by an exception."""
        for number, _event in enumerate(iter(pending), start=1):
            if number == taken:
                raise ConnectionResetError("the broker went away")

    with pytest.raises(ConnectionResetError):
        round_lost_after(3)  # stream[0] confirmed, stream[1:3] not
    pending.send_again(stream[1:3])
    with pytest.raises(ConnectionResetError):
        round_lost_after(1)  # stream[1] lost again, stream[2] still waiting
    pending.send_again(stream[1:2])
    assert list(pending) == stream[1:]
    assert pending.resent == 3  # stream[1] twice, stream[2] once


def test_the_cli_sends_its_whole_count_across_a_broker_restart(private_broker, names, tmp_path):
    url, count = private_broker.amqp_url, 20000
    with declared_archive(url, names):
        process, log = simulator(url, names, "--rate", "2000", "--count", str(count), "--seed", "7",
                                 tmp_path=tmp_path)
        try:
            wait_for(lambda: queue_depth(url, names["archive_queue"]) >= 5000, timeout=60, interval=0.2,
                     what="5000 events published before the restart")
            private_broker.stop_app()
            assert process.poll() is None, "the run ended before the broker stopped: " + log.read_text()
            private_broker.start_app()
            exit_code = process.wait(timeout=180)
        finally:
            if process.poll() is None:  # the test failed: do not leave it retrying
                process.kill()
                process.wait(timeout=10)
        text = log.read_text()
        ids = set(event_ids_in(url, names["archive_queue"]))
    assert "Traceback" not in text and "lost the connection" in text, text
    sent = {event.event_id for event in EventFactory(seed=7).take(count)}
    assert ids <= sent
    if exit_code == 0:
        assert confirmed_in(text) == count and ids == sent, text
    else:  # a run that gives up must say how far it got, and have got that far
        confirmed = int(re.search(rf"(\d+) of {count} events confirmed", text).group(1))
        assert len(ids) >= confirmed, text
