"""Dead letters an operator can act on (GET /dead-letters, POST /dead-letters/redrive and /discard):
the real broker, the real consumer and a real SQLite store, the API in process.

The poison messages: 30 events of a type that a consumer release before the fix refused ("the
cause", removed for real by running the consumer without it), and 20 without a timestamp (bad for
good: a redrive sends them back to the dead-letter queue)."""
from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timezone

import pika
import pytest
from fastapi.testclient import TestClient

import eventreplay.ingest.triage as triage_module
from eventreplay.api import create_app
from eventreplay.broker import event_properties, properties_to_dict
from eventreplay.dead_letters import DeadLetterBox
from eventreplay.schema import InvalidEvent, parse_event
from eventreplay.store import open_store
from tests.support.amqp import broker_connection, publish_raw, queue_depth
from tests.support.api import api_settings
from tests.support.ingest import consumer_settings, running_consumer
from tests.support.processes import free_port
from tests.support.waiting import wait_for

API_KEY = "dead-letter-key"
KEY = {"X-API-Key": API_KEY}
NEW_TYPE = "GiftCardIssued"
NEW_TYPE_REASON = f"unknown event type {NEW_TYPE!r} (this consumer release archives known types only)"
NO_TIMESTAMP_REASON = "invalid OrderPlaced event: timestamp: Field required"


def release_before_the_fix(body: bytes):
    """parse_event as a consumer release that refused event types it did not know validated."""
    event = parse_event(body)
    if not event.known_type:
        raise InvalidEvent(NEW_TYPE_REASON)
    return event


def poison_messages(exchange_time: datetime) -> tuple[list, list]:
    """(30 events of the new type, 20 events without a timestamp), as (routing key, body, properties)."""
    new_type, no_timestamp = [], []
    for i in range(30):
        event_id = str(uuid.uuid4())
        body = json.dumps({"event_id": event_id, "event_type": NEW_TYPE, "timestamp": exchange_time.isoformat(),
                           "card_id": f"gc-{i}", "amount": 25}).encode()
        props = event_properties(event_id=event_id, event_type=NEW_TYPE, timestamp=exchange_time.timestamp(),
                                 headers={"tenant": "shop-1"})
        new_type.append(("gift-cards", body, props))
    for i in range(20):
        event_id = str(uuid.uuid4())
        body = json.dumps({"event_id": event_id, "event_type": "OrderPlaced", "order_id": f"o-{i}"}).encode()
        no_timestamp.append(("order-events", body, event_properties(event_id=event_id, event_type="OrderPlaced",
                                                                      timestamp=None)))
    return new_type, no_timestamp


@pytest.fixture
def dead_letter_api(amqp_url, bound_archive, tmp_path):
    settings = api_settings(f"sqlite:///{tmp_path / 'api.db'}", amqp_url, exchange=bound_archive["exchange"],
                            archive_queue=bound_archive["archive_queue"],
                            dead_letter_queue=bound_archive["dead_letter_queue"], replay_queue="",
                            replay_api_key=API_KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def listed(api, **params) -> dict:
    response = api.get("/dead-letters", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_poison_messages_are_listed_redriven_once_fixed_and_come_back_while_still_bad(
        amqp_url, bound_archive, dead_letter_api, tmp_path, monkeypatch):
    api, names = dead_letter_api, bound_archive
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    new_type, no_timestamp = poison_messages(now)
    publish_raw(amqp_url, names["exchange"], new_type + no_timestamp)
    settings = consumer_settings(amqp_url, store_url, names)

    with open_store(store_url) as store:
        # 1. the release before the fix dead-letters all 50
        with monkeypatch.context() as patch:
            patch.setattr(triage_module, "parse_event", release_before_the_fix)
            with running_consumer(settings, store) as consumer:
                wait_for(lambda: consumer.stats.dead_lettered == 50, timeout=30, what="50 dead letters")
        assert store.count() == 0

        # listed with their reasons, twice: nothing is consumed by looking
        first, second = listed(api), listed(api)
        assert first["total"] == second["total"] == 50
        assert {r["reason"]: r["count"] for r in first["by_reason"]} == {NEW_TYPE_REASON: 30, NO_TIMESTAMP_REASON: 20}
        assert first["by_reason"][0] == {"reason": NEW_TYPE_REASON, "count": 30}  # most first
        ids = [item["id"] for item in first["items"]]
        assert len(set(ids)) == 50 and [item["id"] for item in second["items"]] == ids  # stable, same order
        assert queue_depth(amqp_url, names["dead_letter_queue"]) == 50
        gift = next(item for item in first["items"] if item["event_type"] == NEW_TYPE)
        assert gift["routing_key"] == "gift-cards" and gift["exchange"] == names["exchange"]
        assert gift["content_type"] == "application/json" and gift["message_id"]
        assert datetime.fromisoformat(gift["dead_lettered_at"]) >= now
        assert gift["preview"].startswith('{"event_id": ') and gift["size"] == len(new_type[0][1])

        only_bad = listed(api, reason=NO_TIMESTAMP_REASON, limit=5)
        assert only_bad["total"] == 50 and len(only_bad["items"]) == 5
        assert {item["reason"] for item in only_bad["items"]} == {NO_TIMESTAMP_REASON}

        # 2. the fixed release runs; the new type's dead letters are redriven by reason
        with running_consumer(settings, store) as consumer:
            answer = api.post("/dead-letters/redrive", json={"reason": NEW_TYPE_REASON}, headers=KEY)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"redriven": 30, "remaining": 20}
            wait_for(lambda: store.count() == 30, timeout=30, what="30 redriven events stored")

            # stored as a first-time archive would have stored them
            stored = store.get(json.loads(new_type[0][1])["event_id"])
            assert (stored.routing_key, stored.exchange) == ("gift-cards", names["exchange"])
            assert stored.properties == properties_to_dict(new_type[0][2])
            assert stored.body == new_type[0][1]

            # 3. still-bad ones redriven by ids come back with their reason; nothing lost
            still_bad = [item["id"] for item in listed(api)["items"]][:5]
            answer = api.post("/dead-letters/redrive", json={"ids": still_bad}, headers=KEY)
            assert answer.json()["redriven"] == 5
            wait_for(lambda: consumer.stats.dead_lettered == 5, timeout=30, what="5 dead-lettered again")
            wait_for(lambda: queue_depth(amqp_url, names["dead_letter_queue"]) == 20, timeout=10,
                     what="the dead-letter queue back to 20")
            back = listed(api)
            assert back["total"] == 20 and back["by_reason"] == [{"reason": NO_TIMESTAMP_REASON, "count": 20}]
            assert not set(still_bad) & {item["id"] for item in back["items"]}  # dead-lettered anew: new ids
            assert Counter(item["routing_key"] for item in back["items"]) == {"order-events": 20}

            # all of them (neither reason nor ids): each sent once, each back once
            answer = api.post("/dead-letters/redrive", json={}, headers=KEY)
            assert answer.json()["redriven"] == 20
            wait_for(lambda: consumer.stats.dead_lettered == 25, timeout=30, what="20 more dead-lettered again")
            wait_for(lambda: queue_depth(amqp_url, names["dead_letter_queue"]) == 20, timeout=10,
                     what="the dead-letter queue back to 20")
            assert consumer.stats.stored == 30 and store.count() == 30

        # 4. discard by ids, then the rest by reason
        ids = [item["id"] for item in listed(api)["items"]]
        answer = api.post("/dead-letters/discard", json={"ids": ids[:3]}, headers=KEY)
        assert answer.json() == {"discarded": 3, "remaining": 17}
        assert set(ids[:3]).isdisjoint(item["id"] for item in listed(api)["items"])
        answer = api.post("/dead-letters/discard", json={"reason": NO_TIMESTAMP_REASON, "ids": ids[3:5]}, headers=KEY)
        assert answer.json() == {"discarded": 2, "remaining": 15}
        answer = api.post("/dead-letters/discard", json={"reason": NO_TIMESTAMP_REASON}, headers=KEY)
        assert answer.json() == {"discarded": 15, "remaining": 0}
        assert listed(api) == {"total": 0, "by_reason": [], "items": []}


def test_bad_requests_get_clear_errors(dead_letter_api):
    api = dead_letter_api
    assert api.post("/dead-letters/redrive", json={}).status_code == 401  # the API key, like other POSTs
    for body in ({"ids": "abc"}, {"reason": ""}, {"reason": "x", "extra": 1}, [1, 2]):
        answer = api.post("/dead-letters/discard", json=body, headers=KEY)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"].startswith("invalid request: ")
    for limit in (0, 1001, "many"):
        answer = api.get("/dead-letters", params={"limit": limit})
        assert answer.status_code == 422 and "limit" in answer.json()["detail"]


def test_an_unreachable_broker_is_a_503(tmp_path):
    settings = api_settings(f"sqlite:///{tmp_path / 'api.db'}", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
                            replay_queue="")
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        for answer in (api.get("/dead-letters"), api.post("/dead-letters/redrive", json={"reason": "x"})):
            assert answer.status_code == 503
            assert answer.json()["detail"].startswith("broker unavailable: RabbitMQ is not reachable")


def test_browsing_never_drops_a_message_from_a_queue_with_a_small_delivery_limit(amqp_url, names):
    """A dead-letter queue declared by someone else, dropping a message returned 4 times; its dead
    letters were written before they had an id header (their id is a hash)."""
    queue = names["dead_letter_queue"]
    with broker_connection(amqp_url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 4})
        channel.confirm_delivery()
        for i in range(3):
            channel.basic_publish("", queue, b"not json %d\x00\xff" % i, pika.BasicProperties(
                headers={"x-dead-letter-reason": "body is not UTF-8 text", "x-original-routing-key": "k"}))
    try:
        box = DeadLetterBox(amqp_url, queue, names["archive_queue"])
        looks = [box.browse() for _ in range(8)]
        assert {look.total for look in looks} == {3}
        assert len({tuple(letter.id for letter in look.items) for look in looks}) == 1  # the same ids, order
        assert looks[0].items[0].preview == "not json 0\ufffd\ufffd"  # binary shown safely
        assert looks[0].items[0].id.startswith("sha256-")
        assert queue_depth(amqp_url, queue) == 3
    finally:
        with broker_connection(amqp_url) as connection:
            connection.channel().queue_delete(queue)
