"""The event simulator: reproducible, coherent lifecycles, valid events, and the CLI's publishing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from eventreplay.schema import EVENT_TYPES, parse_event, routing_key_for
from eventreplay.simulate import EventFactory, SteadyClock
from tests.ingest_support import declared_archive, drain, queue_depth, wait_for

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
LIFECYCLE = ("OrderPlaced", "PaymentProcessed", "OrderShipped", "OrderDelivered")


@pytest.fixture(scope="module")
def stream():
    return [event.payload() for event in EventFactory(seed=42, clock=SteadyClock(START)).take(5000)]


def test_the_same_seed_gives_the_same_events():
    first = EventFactory(seed=42, clock=SteadyClock(START)).take(1000)
    again = EventFactory(seed=42, clock=SteadyClock(START)).take(1000)
    other = EventFactory(seed=43, clock=SteadyClock(START)).take(1000)
    assert [e.body for e in first] == [e.body for e in again]
    assert [e.event_id for e in first] != [e.event_id for e in other]
    # with the wall clock only the timestamps differ
    live = EventFactory(seed=42).take(1000)
    strip = lambda events: [{k: v for k, v in e.payload().items() if k not in ("timestamp", "delivered_at")}
                            for e in events]
    assert strip(live) == strip(first)


def test_every_event_is_valid_and_carries_the_wire_contract(stream):
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


def test_orders_follow_their_lifecycle(stream):
    seen: dict[str, list[str]] = defaultdict(list)
    placed: dict[str, dict] = {}
    for payload in stream:
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


def test_sessions_and_reviews_are_coherent(stream):
    open_sessions: dict[str, str] = {}
    registered, delivered_to = set(), defaultdict(set)
    orders = {}
    for payload in stream:
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
    full = EventFactory(seed=9, clock=SteadyClock(START)).take(4000)
    only = EventFactory(seed=9, clock=SteadyClock(START), types=wanted).take(100)
    assert {e.event_type for e in only} == wanted
    assert [e.body for e in only] == [e.body for e in full if e.event_type in wanted][:100]
    with pytest.raises(ValueError, match="NoSuchEvent"):
        EventFactory(types=["NoSuchEvent"])


@pytest.fixture
def bound(amqp_url, names):
    with declared_archive(amqp_url, names):
        yield names


def simulator(amqp_url, names, *args, tmp_path):
    env = dict(os.environ, AMQP_URL=amqp_url, EXCHANGE=names["exchange"], LOG_LEVEL="INFO")
    log = open(tmp_path / "simulator.log", "wb")
    return subprocess.Popen([sys.executable, "event_simulator.py", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT), tmp_path / "simulator.log"


def test_the_cli_publishes_a_seeded_count_with_properties(amqp_url, bound, tmp_path):
    process, log = simulator(amqp_url, bound, "--rate", "0", "--count", "300", "--seed", "42", tmp_path=tmp_path)
    assert process.wait(timeout=60) == 0, log.read_text()
    assert "sent 300 events, 300 confirmed" in log.read_text()
    expected = EventFactory(seed=42).take(300)
    got = drain(amqp_url, bound["archive_queue"], expected=300)
    assert [json.loads(body)["event_id"] for _m, _p, body in got] == [e.event_id for e in expected]
    method, props, body = got[0]
    assert method.routing_key == expected[0].routing_key
    assert (props.message_id, props.type, props.delivery_mode, props.content_type) == (
        expected[0].event_id, expected[0].event_type, 2, "application/json")


def test_the_cli_stops_cleanly_on_sigterm(amqp_url, bound, tmp_path):
    process, log = simulator(amqp_url, bound, "--rate", "50", tmp_path=tmp_path)  # forever
    wait_for(lambda: queue_depth(amqp_url, bound["archive_queue"]) >= 20, timeout=30, what="20 events published")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert "Traceback" not in text
    confirmed = int(text.split(" confirmed")[0].rsplit(" ", 1)[-1])
    assert confirmed >= 20
    wait_for(lambda: queue_depth(amqp_url, bound["archive_queue"]) == confirmed, timeout=10,
             what="every confirmed event in the queue")


def test_the_cli_waits_for_an_unreachable_broker_with_a_clear_line(names, tmp_path):
    process, log = simulator("amqp://guest:guest@127.0.0.1:1/%2F", names, "--count", "5", tmp_path=tmp_path)
    wait_for(lambda: "is not reachable" in log.read_text(), timeout=15, what="the retry log line")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()
