"""POST /replay end to end: real broker, every store backend, the API in process."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest

from tests.support.amqp import declare_queue, delete_queue, drain, queue_depth, queue_exists
from tests.support.api import wait_job
from tests.support.events import T0, new_event
from tests.support.names import unique
from tests.support.stores import seed
from tests.support.waiting import wait_for


def start(api, body: dict, *, wait: bool = True, expect: int = 202) -> dict:
    response = api.post("/replay", params={"wait": "true"} if wait else None, json=body)
    assert response.status_code == expect, response.text
    return response.json()


def test_prototype_request_replays_that_type_in_order(api, api_store, target_queue, amqp_url):
    events = seed(api_store, [new_event("OrderPlaced" if i % 3 else "UserLoggedIn", order_id=f"o{i}")
                              for i in range(30)])
    wanted = [e for e in events if e.event_type == "OrderPlaced"]

    response = api.post("/replay?wait=true", json={"event_type": "OrderPlaced", "target_queue": target_queue})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/replays/{job['id']}"
    assert job["state"] == "completed", job
    assert job["matched"] == job["published"] == job["confirmed"] == len(wanted)
    assert job["digest"] == hashlib.sha256(b"".join(e.body for e in wanted)).hexdigest()
    assert job["target"] == f"queue {target_queue!r}"

    received = drain(amqp_url, target_queue, expected=len(wanted))
    assert [m.body for m in received] == [e.body for e in wanted]  # order and bytes
    for message, event in zip(received, wanted):
        props = message.properties
        assert props.message_id == event.event_id and props.type == "OrderPlaced"
        assert props.content_type == "application/json" and props.delivery_mode == 2
        assert props.timestamp == int(event.timestamp.timestamp())
        assert message.headers["x-replay-id"] == job["id"]
        assert message.headers["x-original-routing-key"] == "order-events"
        assert message.headers["x-original-exchange"] == "ecommerce-exchange"
        datetime.fromisoformat(message.headers["x-replayed-at"])
    assert api.get(f"/replays/{job['id']}").json()["state"] == "completed"
    assert job["id"] in [j["id"] for j in api.get("/replays").json()]


def test_filters_window_types_match_limit_and_digest(api, api_store, target_queue, amqp_url):
    types = ["OrderPlaced", "PaymentProcessed", "OrderShipped", "UserLoggedIn"]
    events = seed(api_store, [
        new_event(types[i % 4], timestamp=T0 + timedelta(minutes=i), order_id=f"o{i % 5}", user_id=f"u{i % 2}")
        for i in range(40)
    ])
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=30)
    body = {"event_types": ["OrderPlaced", "OrderShipped"], "event_type": "PaymentProcessed",
            "since": since.isoformat(), "until": until.replace(tzinfo=None).isoformat(), "target_queue": target_queue}
    wanted = [e for e in events if e.event_type in types[:3] and since <= e.timestamp < until]
    job = start(api, body)
    assert job["state"] == "completed" and job["confirmed"] == len(wanted)
    assert [m.body for m in drain(amqp_url, target_queue, expected=len(wanted))] == [e.body for e in wanted]

    # the same replay again: same content, same digest
    again = start(api, body)
    assert again["digest"] == job["digest"] and again["id"] != job["id"]
    drain(amqp_url, target_queue, expected=len(wanted))

    # match on order_id: one order's whole history, every type
    order = [e for e in events if json.loads(e.body)["order_id"] == "o3"]
    job = start(api, {"match": {"order_id": "o3"}, "target_queue": target_queue})
    assert job["confirmed"] == len(order)
    assert [m.body for m in drain(amqp_url, target_queue, expected=len(order))] == [e.body for e in order]

    # limit
    job = start(api, {"event_type": "OrderPlaced", "limit": 3, "target_queue": target_queue})
    assert job["matched"] == job["confirmed"] == 3
    first3 = [e.body for e in events if e.event_type == "OrderPlaced"][:3]
    assert [m.body for m in drain(amqp_url, target_queue, expected=3)] == first3


def test_dry_run_counts_and_publishes_nothing(api, api_store, target_queue, amqp_url):
    events = seed(api_store, [new_event("OrderPlaced", order_id=f"o{i}") for i in range(8)])
    response = api.post("/replay", json={"event_type": "OrderPlaced", "dry_run": True, "target_queue": target_queue})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["dry_run"] is True and result["matched"] == 8
    assert [s["event_id"] for s in result["samples"]] == [e.event_id for e in events[:5]]
    assert result["samples"][0]["body"]["order_id"] == "o0"
    assert queue_depth(amqp_url, target_queue) == 0
    assert api.post("/replay", json={"dry_run": True, "limit": 2}).json()["matched"] == 2


def test_target_exchange_with_and_without_routing_key(api, api_store, amqp_url, amqp):
    events = seed(api_store, [new_event(t) for t in ("OrderPlaced", "UserLoggedIn", "OrderPlaced")])
    exchange, queue_all, queue_fixed = unique("x"), unique("all"), unique("fixed")
    channel = amqp.channel()
    channel.exchange_declare(exchange, exchange_type="topic", auto_delete=False)
    channel.queue_declare(queue_all)
    channel.queue_declare(queue_fixed)
    channel.queue_bind(queue_all, exchange, routing_key="#")
    channel.queue_bind(queue_fixed, exchange, routing_key="replays.fixed")
    try:
        job = start(api, {"target_exchange": exchange})  # every type, original routing keys
        assert job["state"] == "completed" and job["confirmed"] == 3
        received = drain(amqp_url, queue_all, expected=3)
        assert [m.routing_key for m in received] == [e.routing_key for e in events]
        assert all(m.headers["x-replay-id"] == job["id"] for m in received)  # the archive consumer skips these

        job = start(api, {"event_type": "OrderPlaced", "target_exchange": exchange, "routing_key": "replays.fixed"})
        assert job["confirmed"] == 2
        assert len(drain(amqp_url, queue_fixed, expected=2)) == 2

        # unroutable: the mandatory publish comes back and the job fails with a clear error
        channel.exchange_declare(f"{exchange}-empty", exchange_type="topic")
        job = start(api, {"event_type": "OrderPlaced", "target_exchange": f"{exchange}-empty"})
        assert job["state"] == "failed" and "no queue is bound" in job["error"], job
        assert job["confirmed"] == 0
    finally:
        channel.exchange_delete(f"{exchange}-empty")
        channel.queue_delete(queue_all)
        channel.queue_delete(queue_fixed)
        channel.exchange_delete(exchange)


def test_missing_queue_is_404_or_created(api, api_store, amqp_url):
    seed(api_store, [new_event("OrderPlaced") for _ in range(5)])
    queue = unique("missing")
    response = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue})
    assert response.status_code == 404 and queue in response.json()["detail"]
    assert not queue_exists(amqp_url, queue)
    assert api.get("/replays").json() == []  # no job either

    response = api.post("/replay?wait=true", json={"event_type": "OrderPlaced", "target_queue": queue,
                                                   "create_queue": True})
    try:
        assert response.status_code == 202 and response.json()["confirmed"] == 5
        assert wait_for(lambda: queue_depth(amqp_url, queue) == 5, what="5 messages in the created queue")
    finally:
        delete_queue(amqp_url, queue)

    response = api.post("/replay", json={"target_exchange": unique("nox")})
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"event_type": "A"}, "body"),  # no target
    ({"event_type": "A", "target_queue": "amq.gen-x"}, "target_queue"),
    ({"event_type": "A", "target_queue": "x" * 256}, "target_queue"),
    ({"event_type": "A", "target_queue": "bad\nname"}, "target_queue"),
    ({"event_type": "", "target_queue": "q"}, "event_type"),
    ({"event_type": "A", "target_queue": "q", "limit": 0}, "limit"),
    ({"event_type": "A", "target_queue": "q", "rate": -1}, "rate"),
    ({"event_type": "A", "target_queue": "q", "rate": 5, "speed": 2}, "body"),
    ({"event_type": "A", "target_queue": "q", "target_exchange": "x"}, "body"),
    ({"event_type": "A", "target_queue": "q", "since": "2024-01-02", "until": "2024-01-01"}, "until"),
    ({"event_type": "A", "target_queue": "q", "since": "yesterday"}, "since"),
    ({"event_type": "A", "target_queue": "q", "surprise": 1}, "surprise"),
])
def test_bad_requests_are_422_with_field(api, body, field):
    response = api.post("/replay", json=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["detail"].startswith("invalid request") and "Traceback" not in response.text
    assert field in [e["field"] for e in data["errors"]], data


def test_unknown_job_and_wrong_state(api, api_store, target_queue):
    assert api.get("/replays/not-a-uuid").status_code == 404
    missing = "6f1c1a8e-2d7a-4c55-8d0e-1b2b3c4d5e6f"
    for response in (api.get(f"/replays/{missing}"), api.post(f"/replays/{missing}/cancel"),
                     api.post(f"/replays/{missing}/resume")):
        assert response.status_code == 404 and "detail" in response.json()
    seed(api_store, [new_event("OrderPlaced")])
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue})
    assert job["state"] == "completed"
    assert api.post(f"/replays/{job['id']}/cancel").status_code == 409
    assert api.post(f"/replays/{job['id']}/resume").status_code == 409
    assert [j["id"] for j in api.get("/replays", params={"state": "completed"}).json()] == [job["id"]]
    assert api.get("/replays", params={"state": "failed"}).json() == []


def _replayed_at(message) -> datetime:
    return datetime.fromisoformat(message.headers["x-replayed-at"])


def test_speed_keeps_scaled_spacing(api, api_store, target_queue, amqp_url):
    # 50 events over 10 s of original time, at speed 10: 1 s from the first to the last
    seed(api_store, [new_event("OrderPlaced", timestamp=T0 + timedelta(seconds=10 * i / 49)) for i in range(50)])
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue, "speed": 10})
    assert job["state"] == "completed" and job["confirmed"] == 50
    received = drain(amqp_url, target_queue, expected=50)
    span = (_replayed_at(received[-1]) - _replayed_at(received[0])).total_seconds()
    assert 0.8 <= span <= 1.2, span


def test_rate_holds(api, api_store, target_queue, amqp_url):
    seed(api_store, [new_event("OrderPlaced") for _ in range(101)])
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue, "rate": 100})
    assert job["confirmed"] == 101
    received = drain(amqp_url, target_queue, expected=101)
    span = (_replayed_at(received[-1]) - _replayed_at(received[0])).total_seconds()
    assert 0.8 <= span <= 1.2, span  # 100 intervals at 100/s


def test_several_jobs_run_at_once(api, api_store, amqp_url, names):
    seed(api_store, [new_event("OrderPlaced") for _ in range(40)])
    queues = [f"{names['target_queue']}-{i}" for i in range(3)]
    for queue in queues:
        declare_queue(amqp_url, queue)
    try:
        jobs = [start(api, {"event_type": "OrderPlaced", "target_queue": q, "rate": 40}, wait=False)
                for q in queues]
        wait_for(lambda: all(api.get(f"/replays/{j['id']}").json()["state"] == "running" for j in jobs),
                 what="three jobs running together")
        for job in jobs:
            assert wait_job(api, job["id"])["state"] == "completed"
    finally:
        for queue in queues:
            delete_queue(amqp_url, queue)


def test_cancel_large_replay_stops_promptly(api, api_store, target_queue, amqp_url):
    seed(api_store, (new_event("OrderPlaced", n=i) for i in range(50_000)), batch=5000)
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue, "rate": 5000}, wait=False)
    wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 500, what="500 confirmed")
    response = api.post(f"/replays/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["state"] == "cancelled", cancelled
    assert cancelled["matched"] == 50_000
    assert 500 <= cancelled["published"] < 50_000 and cancelled["confirmed"] == cancelled["published"]
    wait_for(lambda: queue_depth(amqp_url, target_queue) == cancelled["confirmed"], what="queue depth == confirmed")
    assert api.get(f"/replays/{job['id']}").json()["confirmed"] == cancelled["confirmed"]


def test_a_replay_delivers_what_was_archived_when_it_started(api, api_store, target_queue, amqp_url):
    # Events archived while a replay runs are not part of it: it ends, and `matched` stays true.
    seed(api_store, [new_event("OrderPlaced", order_id=f"o{i}") for i in range(20)])
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue, "rate": 40}, wait=False)
    wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 2, what="the replay under way")
    api_store.append([new_event("OrderPlaced", order_id=f"late{i}") for i in range(10)])
    done = wait_job(api, job["id"])
    assert done["state"] == "completed", done
    assert done["matched"] == done["confirmed"] == 20 and done["up_to_position"] is not None
    received = drain(amqp_url, target_queue, expected=30, timeout=3)
    assert len(received) == 20 and not any(b"late" in m.body for m in received)


def test_an_event_carrying_another_users_user_id_is_replayed(api, api_store, target_queue, amqp_url):
    # RabbitMQ refuses a publish whose user_id is not the connection's own user.
    event = new_event("OrderPlaced", order_id="o1")
    event = type(event)(**{**{f: getattr(event, f) for f in event.__slots__},
                           "properties": {**event.properties, "user_id": "someone-else"}})
    seed(api_store, [event])
    job = start(api, {"event_type": "OrderPlaced", "target_queue": target_queue})
    assert job["state"] == "completed" and job["confirmed"] == 1, job
    [message] = drain(amqp_url, target_queue, expected=1)
    assert message.body == event.body
    assert message.properties.user_id is None and message.headers["x-original-user-id"] == "someone-else"


def test_an_unroutable_event_fails_the_job_and_resume_delivers_the_rest(api, api_store, amqp_url, amqp):
    # The broker returns the unroutable event and acks the others: the job counts as confirmed
    # exactly the events before it, and a resume (once a queue is bound) starts with it.
    events = (seed(api_store, [new_event("OrderPlaced", order_id=f"o{i}") for i in range(200)])
              + seed(api_store, [new_event("PaymentProcessed", order_id="o-pay")])
              + seed(api_store, [new_event("OrderPlaced", order_id=f"p{i}") for i in range(100)]))
    exchange, queue = unique("x"), unique("orders")
    channel = amqp.channel()
    channel.exchange_declare(exchange, exchange_type="topic")
    channel.queue_declare(queue, durable=True)  # persistent messages: acks wait for the disk, returns do not
    channel.queue_bind(queue, exchange, routing_key="order-events")
    try:
        job = start(api, {"target_exchange": exchange})  # original routing keys; payment-events unbound
        assert job["state"] == "failed" and "NO_ROUTE" in job["error"], job
        assert job["confirmed"] == 200 and job["last_position"] is not None, job
        channel.queue_bind(queue, exchange, routing_key="payment-events")
        response = api.post(f"/replays/{job['id']}/resume")
        assert response.status_code == 202, response.text
        done = wait_job(api, job["id"])
        assert done["state"] == "completed" and done["confirmed"] == 301, done
        received = [m.body for m in drain(amqp_url, queue, timeout=5)]
        bodies = [e.body for e in events]
        assert received[:200] == bodies[:200]  # before the failure: exactly once, in order
        assert set(received) == set(bodies)  # nothing missing; events in flight at the failure may repeat
        assert received[-101:] == bodies[200:]  # the resume starts at the returned event
    finally:
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)
