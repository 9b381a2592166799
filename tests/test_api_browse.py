"""Browsing and operations endpoints, every store backend."""
from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from eventreplay.api import create_app
from tests.support.api import api_settings
from tests.support.events import T0, new_event
from tests.support.stores import seed


def test_event_types_events_pages_and_one_event(api, api_store):
    types = ["OrderPlaced", "UserLoggedIn", "OrderPlaced", "PaymentProcessed", "OrderPlaced", "UserLoggedIn",
             "OrderPlaced"]
    events = seed(api_store, [new_event(t, timestamp=T0 + timedelta(minutes=i), order_id=f"o{i % 3}")
                              for i, t in enumerate(types)])
    assert api.get("/event-types").json() == [
        {"event_type": "OrderPlaced", "count": 4}, {"event_type": "PaymentProcessed", "count": 1},
        {"event_type": "UserLoggedIn", "count": 2},
    ]
    # pages of 2 over every event, in global order
    seen, after = [], None
    for _ in range(10):
        page = api.get("/events", params={"limit": 2, **({"after": after} if after is not None else {})}).json()
        seen += page["items"]
        after = page["next_after"]
        if after is None:
            break
    assert [e["event_id"] for e in seen] == [e.event_id for e in events]
    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)

    page = api.get("/events", params=[("event_type", "OrderPlaced"), ("event_type", "PaymentProcessed"),
                                      ("since", (T0 + timedelta(minutes=1)).isoformat()),
                                      ("until", "2024-05-01T12:05:00")]).json()
    wanted = [e for e in events if e.event_type in ("OrderPlaced", "PaymentProcessed")
              and T0 + timedelta(minutes=1) <= e.timestamp < T0 + timedelta(minutes=5)]
    assert [e["event_id"] for e in page["items"]] == [e.event_id for e in wanted] and page["next_after"] is None

    page = api.get("/events", params={"match": '{"order_id": "o1"}'}).json()
    assert {e["body"]["order_id"] for e in page["items"]} == {"o1"} and len(page["items"]) == 2

    one = api.get(f"/events/{events[0].event_id}").json()
    assert one["event_id"] == events[0].event_id and one["routing_key"] == "order-events"
    assert one["body"]["event_type"] == "OrderPlaced" and one["properties"]["message_id"] == events[0].event_id
    assert one["exchange"] == "ecommerce-exchange"


def test_browse_errors_are_json(api):
    for path in ("/events/not-an-id", "/events/6f1c1a8e-2d7a-4c55-8d0e-1b2b3c4d5e6f", "/nowhere"):
        response = api.get(path)
        assert response.status_code == 404 and "detail" in response.json()
    for params in ({"limit": 0}, {"since": "2024-01-02", "until": "2024-01-01"}, {"match": "[1]"},
                   {"after": -1}, {"since": "soon"}):
        response = api.get("/events", params=params)
        assert response.status_code == 422 and response.json()["errors"], (params, response.text)


def test_health_ready_metrics(api, api_store, target_queue):
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json() == {"store": "ok", "broker": "ok"}
    seed(api_store, [new_event("OrderPlaced") for _ in range(3)])
    assert api.post("/replay?wait=true", json={"event_type": "OrderPlaced", "target_queue": target_queue}
                    ).json()["confirmed"] == 3
    text = api.get("/metrics").text
    assert "eventreplay_events_replayed_total 3.0" in text
    assert 'eventreplay_replay_jobs{state="completed"} 1.0' in text
    assert "eventreplay_publish_confirm_seconds_bucket" in text


def test_ready_reports_a_broker_that_is_down(store_url, amqp_url):
    app = create_app(api_settings(store_url, "amqp://guest:guest@127.0.0.1:1/%2F"))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["store"] == "ok" and response.json()["broker"].startswith("unreachable")
        response = client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": "q"})
        assert response.status_code == 503 and response.json()["detail"].startswith("broker unavailable")


def test_api_key_required_on_mutating_endpoints(store_url, amqp_url, target_queue):
    app = create_app(api_settings(store_url, amqp_url, replay_api_key="s3cret"))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"event_type": "OrderPlaced", "target_queue": target_queue}
        for headers in ({}, {"X-API-Key": "wrong"}):
            response = client.post("/replay", json=body, headers=headers)
            assert response.status_code == 401 and response.json()["detail"], response.text
        missing = "6f1c1a8e-2d7a-4c55-8d0e-1b2b3c4d5e6f"
        assert client.post(f"/replays/{missing}/cancel").status_code == 401
        assert client.post(f"/replays/{missing}/resume").status_code == 401
        response = client.post("/replay?wait=true", json=body, headers={"X-API-Key": "s3cret"})
        assert response.status_code == 202 and response.json()["state"] == "completed", response.text
        # reading needs no key
        assert client.get("/replays").status_code == 200 and client.get("/event-types").status_code == 200


# inputs at the edges of what Python can represent: a 422 with a readable message, never a 500 ------

DEEP_MATCH = "[" * 5000 + "]" * 5000
FAR_OFFSETS = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00")


def test_events_refuses_overflowing_times_and_unreadable_match_with_422(api, api_store):
    seed(api_store, [new_event("OrderPlaced", order_id="o1")])
    cases = [({"since": moment}, "since") for moment in FAR_OFFSETS]
    cases += [({"until": moment}, "until") for moment in FAR_OFFSETS]
    cases += [
        ({"match": DEEP_MATCH}, "match"),
        ({"match": '{"a": ' + DEEP_MATCH + "}"}, "match"),
        ({"match": '{"order_id": ' + "7" * 5000 + "}"}, "match"),
        ({"match": '{"order_id": NaN}'}, "match"),
        ({"match": '{"order_id": Infinity}'}, "match"),
    ]
    for params, field in cases:
        response = api.get("/events", params=params)
        assert response.status_code == 422, (params, response.status_code, response.text[:300])
        body = response.json()
        assert [e["field"] for e in body["errors"]] == [field], body
        assert body["detail"].startswith(f"invalid request: {field}: ") and "Traceback" not in body["detail"]
        assert len(body["detail"]) < 400, body["detail"]
    assert "out of range" in api.get("/events", params={"since": FAR_OFFSETS[0]}).json()["detail"]
    assert "nested too deeply" in api.get("/events", params={"match": DEEP_MATCH}).json()["detail"]
    assert "too long" in api.get("/events", params={"match": '{"a": ' + "7" * 5000 + "}"}).json()["detail"]
    # the ends of the calendar in UTC are fine
    ok = api.get("/events", params={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 1, ok.text


def test_replay_refuses_overflowing_times_with_422(api, target_queue):
    for field in ("since", "until"):
        for moment in FAR_OFFSETS:
            response = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": target_queue,
                                                 field: moment})
            assert response.status_code == 422, (field, moment, response.status_code, response.text[:300])
            body = response.json()
            assert [e["field"] for e in body["errors"]] == [field], body
            assert "out of range" in body["detail"], body
    # and a dry run with the same window in UTC still answers
    response = api.post("/replay", json={"event_type": "OrderPlaced", "dry_run": True,
                                         "since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"})
    assert response.status_code == 200, response.text


def test_the_docs_page_needs_no_internet(api):
    import re

    page = api.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert assets and not [a for a in assets if a.startswith(("http://", "https://", "//"))], assets
    for asset in assets:
        assert api.get(asset).status_code == 200, asset


def test_a_body_that_cannot_be_decoded_is_a_422(api):
    for body in (b'{"target_queue": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000):
        response = api.post("/replay", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "body"


def test_replay_refuses_limit_rate_and_speed_that_are_not_plain_numbers(api, target_queue):
    """`true` is not a count, NaN is not a pace, and 1e30 is not "an input string": a 422 naming the
    field with a message an operator can act on (a raw body, since JSON has no NaN literal)."""
    cases = [
        ('"limit": true', "limit", "limit must be an integer between 1 and 1000000000000, not true"),
        ('"limit": false', "limit", "limit must be an integer between 1 and 1000000000000, not false"),
        ('"limit": 1.5', "limit", "limit must be an integer between 1 and 1000000000000"),
        ('"limit": 1e30', "limit", "limit must be an integer between 1 and 1000000000000"),
        ('"limit": 1000000000001', "limit", "limit must be an integer between 1 and 1000000000000"),
        ('"limit": 0', "limit", "limit must be an integer between 1 and 1000000000000"),
        ('"limit": "5"', "limit", "limit must be an integer between 1 and 1000000000000"),
        ('"rate": NaN', "rate", "rate must be a finite number"),
        ('"rate": Infinity', "rate", "rate must be a finite number"),
        ('"rate": true', "rate", "rate must be a number, not true"),
        ('"speed": -Infinity', "speed", "speed must be a finite number"),
        ('"speed": NaN', "speed", "speed must be a finite number"),
    ]
    for dry_run in (False, True):
        for fragment, field, message in cases:
            body = f'{{"event_type": "OrderPlaced", "target_queue": "{target_queue}", "dry_run": {str(dry_run).lower()}, {fragment}}}'
            response = api.post("/replay", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 422, (fragment, response.status_code, response.text[:300])
            errors = response.json()["errors"]
            assert errors == [{"field": field, "message": message}], (fragment, errors)
            assert response.json()["detail"] == f"invalid request: {field}: {message}"
    assert api.get("/replays").json() == []  # nothing was started
    # plain numbers still work, an integral rate or speed included
    for fields in ({"limit": 1}, {"limit": 1_000_000_000_000}, {"rate": 2}, {"rate": 0.5}, {"speed": 60}):
        response = api.post("/replay", json={"event_type": "OrderPlaced", "dry_run": True, **fields})
        assert response.status_code == 200, (fields, response.text)
