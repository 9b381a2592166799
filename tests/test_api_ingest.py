"""`GET /ingest`: the consumer's queue and the dead-letter queue as the broker reports them (real
queues of the test's own), the lag, and exact events per minute over the last hour on both
backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from eventreplay.api import create_app as create_api
from tests.support.amqp import broker_connection, publish_raw
from tests.support.api import api_settings
from tests.support.events import new_event
from tests.support.waiting import wait_for


@pytest.fixture
def ingest_api(store_url, amqp_url, bound_archive):
    """The API in process on an empty store of each backend, watching the test's own archive queues."""
    app = create_api(api_settings(store_url, amqp_url, archive_queue=bound_archive["archive_queue"],
                                  dead_letter_queue=bound_archive["dead_letter_queue"]))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def this_minute() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


def ingest(client) -> dict:
    response = client.get("/ingest")
    assert response.status_code == 200, response.text
    return response.json()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_empty_archive_has_sixty_empty_minutes_and_no_lag(ingest_api, bound_archive):
    body = ingest(ingest_api)
    assert body["broker"] == "ok"
    assert body["archive_queue"] == {"name": bound_archive["archive_queue"], "messages": 0, "consumers": 0}
    assert body["dead_letter_queue"] == {"name": bound_archive["dead_letter_queue"], "messages": 0}
    assert body["consumer_connected"] is False and body["lag_seconds"] == 0.0
    assert body["events"] == 0 and body["oldest_event"] is None and body["newest_event"] is None
    minutes = [parse(m["minute"]) for m in body["per_minute"]]
    assert len(minutes) == 60 and all(m["count"] == 0 for m in body["per_minute"])
    # oldest first, one minute apart, the current minute last (unless the clock just turned)
    assert all(b - a == timedelta(minutes=1) for a, b in zip(minutes, minutes[1:]))
    assert minutes[-1] in (this_minute(), this_minute() - timedelta(minutes=1))


def test_per_minute_counts_and_archive_span_are_exact(ingest_api):
    now = this_minute()
    store = ingest_api.app.state.services.store()
    # 5 events 42 minutes ago, 2 in the current minute, 3 older than the hour (outside the chart)
    recent = [new_event("OrderPlaced", timestamp=now - timedelta(minutes=42, seconds=-s)) for s in range(5)]
    current = [new_event("UserLoggedIn", timestamp=now + timedelta(seconds=s)) for s in range(2)]
    old = [new_event("OrderShipped", timestamp=now - timedelta(hours=3, seconds=s)) for s in range(3)]
    store.append(old + current)
    store.append(recent)

    body = ingest(ingest_api)
    if parse(body["per_minute"][-1]["minute"]) != now:  # the minute turned between seeding and asking
        body = ingest(ingest_api)
    by_minute = {parse(m["minute"]): m["count"] for m in body["per_minute"]}
    assert parse(body["per_minute"][-1]["minute"]) == now
    assert by_minute[now] == 2 and by_minute[now - timedelta(minutes=42)] == 5
    assert sum(by_minute.values()) == 7
    assert body["events"] == 10
    assert parse(body["oldest_event"]) == old[-1].timestamp
    assert parse(body["newest_event"]) == current[-1].timestamp


def test_queue_depth_consumers_and_lag_come_from_the_broker(ingest_api, amqp_url, bound_archive):
    store = ingest_api.app.state.services.store()
    newest = datetime.now(timezone.utc) - timedelta(seconds=30)
    store.append([new_event(timestamp=newest)])
    # three messages wait for a consumer that is not there; two were dead-lettered
    publish_raw(amqp_url, bound_archive["exchange"], [("order.placed", b"{}", None)] * 3)
    publish_raw(amqp_url, "", [(bound_archive["dead_letter_queue"], b"not json", None)] * 2)

    body = wait_for(lambda: (b := ingest(ingest_api))["archive_queue"]["messages"] == 3
                    and b["dead_letter_queue"]["messages"] == 2 and b, timeout=10, what="the queue depths")
    assert body["consumer_connected"] is False and body["archive_queue"]["consumers"] == 0
    # messages wait: the archive is behind by at least the newest stored event's age
    assert 30 <= body["lag_seconds"] < 30 + 60

    with broker_connection(amqp_url) as connection:
        channel = connection.channel()
        taken = []
        channel.basic_consume(bound_archive["archive_queue"], lambda ch, method, props, body_: taken.append(method))
        connection.process_data_events(time_limit=0)
        wait_for(lambda: connection.process_data_events(time_limit=0.05) or len(taken) == 3, timeout=10,
                 what="the consumer to take the messages")
        for method in taken:
            channel.basic_ack(method.delivery_tag)
        connection.process_data_events(time_limit=0)
        body = wait_for(lambda: (b := ingest(ingest_api))["archive_queue"]["messages"] == 0 and b, timeout=10,
                        what="the queue to empty")
        assert body["consumer_connected"] is True and body["archive_queue"]["consumers"] == 1
        assert body["lag_seconds"] == 0.0
    assert ingest(ingest_api)["consumer_connected"] is False  # the consumer left


def test_missing_queues_are_null_and_an_unreachable_broker_is_said(store_url, amqp_url, unused_url):
    app = create_api(api_settings(store_url, amqp_url, archive_queue="no-such-queue-x9",
                                  dead_letter_queue="no-such-queue-x9.dead-letter"))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = ingest(client)
    assert body["broker"] == "ok" and body["archive_queue"] is None and body["dead_letter_queue"] is None
    assert body["consumer_connected"] is False and body["lag_seconds"] is None

    port = unused_url.rsplit(":", 1)[1]
    app = create_api(api_settings(store_url, f"amqp://guest:guest@127.0.0.1:{port}/%2F"))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = ingest(client)
    assert body["broker"].startswith("unreachable: ") and body["archive_queue"] is None
    assert body["consumer_connected"] is False and body["lag_seconds"] is None
    assert len(body["per_minute"]) == 60  # the store's part still answers
