"""The overview's ingest card with Flask's test client, against a real Replay API process watching
the test's own archive queues (real RabbitMQ) over an SQLite store seeded with known minutes."""
from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from eventreplay.store import open_store
from eventreplay.ui import create_app
from tests.support.amqp import publish_raw
from tests.support.events import new_event
from tests.support.processes import start_api
from tests.support.waiting import wait_for

API_KEY = "ingest-ui-test-key"


@pytest.fixture
def api_over(tmp_path, amqp_url, bound_archive):
    """start(events) -> the API process over a store holding those events, watching the test's queues."""
    servers = []

    def start(events):
        store_url = f"sqlite:///{tmp_path / 'events.db'}"
        with open_store(store_url) as store:
            store.append(events)
        server = start_api(store_url, amqp_url, tmp_path / "replay-api.log", api_key=API_KEY,
                           ARCHIVE_QUEUE=bound_archive["archive_queue"],
                           DEAD_LETTER_QUEUE=bound_archive["dead_letter_queue"])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ui_client(api_url: str):
    return create_app({"TESTING": True, "REPLAY_API_URL": api_url, "REPLAY_API_KEY": API_KEY}).test_client()


def initial_view(page: str) -> dict:
    """The card's data as the page hands it to its script."""
    match = re.search(r'<script type="application/json" data-ingest-initial>(.*?)</script>', page, re.S)
    assert match, "no ingest data on the page"
    return json.loads(match.group(1))


def field(page: str, name: str) -> str:
    match = re.search(rf'data-ingest-field="{name}"[^>]*>([^<]*)<', page)
    assert match, name
    return html.unescape(match.group(1))


def test_the_overview_shows_events_per_minute_queue_lag_and_dead_letters(api_over, amqp_url, bound_archive):
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    events = ([new_event(timestamp=now - timedelta(minutes=10, seconds=-s)) for s in range(6)]
              + [new_event(timestamp=now - timedelta(minutes=30))]
              + [new_event(timestamp=now - timedelta(days=2))])  # outside the chart
    api = api_over(events)
    publish_raw(amqp_url, bound_archive["exchange"], [("order.placed", b"{}", None)] * 4)
    publish_raw(amqp_url, "", [(bound_archive["dead_letter_queue"], b"not json", None)] * 2)
    client = ui_client(api.url)

    def loaded():
        view = client.get("/overview.json").get_json()["ingest"]
        return view if view["dead_letters"] == 2 and "4 waiting" in view["queue_text"] else None
    wait_for(loaded, timeout=10, what="the queue depths")

    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    view = initial_view(page)
    if view["points"][-1]["minute"] != now.isoformat().replace("+00:00", "Z"):  # the minute turned
        now += timedelta(minutes=1)
    counts = {p["label"]: p["count"] for p in view["points"]}
    assert len(view["points"]) == 60 and view["error"] is None
    assert counts[(now - timedelta(minutes=10)).strftime("%H:%M")] == 6
    assert counts[(now - timedelta(minutes=30)).strftime("%H:%M")] == 1
    assert view["last_hour"] == 7 and field(page, "last_hour_text") == "7"
    assert view["points"][0]["title"].endswith("UTC: 0 events")
    assert field(page, "consumer") == "not connected" and 'data-ok="false"' in page
    assert field(page, "queue_text") == f"4 waiting in {bound_archive['archive_queue']} (0 consumers)"
    assert re.fullmatch(r"\d+ min \d\d s", field(page, "lag_text"))  # the newest event is ~10 min old
    assert field(page, "dead_letters_text") == "2"
    assert '<a href="/dead-letters" data-ingest-field="dead_letters_text">2</a>' in page
    assert field(page, "broker") == "ok"
    # the chart's message for an empty hour is hidden; the chart itself is the page script's
    assert re.search(r"<p class=\"empty\" data-timeseries-empty hidden>", page)
    assert "<svg class=\"timeseries-chart\" data-timeseries" in page

    # the live JSON carries the same card
    assert client.get("/overview.json").get_json()["ingest"]["points"] == view["points"]


def test_an_empty_archive_shows_an_empty_chart_with_a_message(api_over):
    client = ui_client(api_over([]).url)
    page = client.get("/").get_data(as_text=True)
    view = initial_view(page)
    assert len(view["points"]) == 60 and all(p["count"] == 0 for p in view["points"])
    assert '<p class="empty" data-timeseries-empty >No events in the last hour.</p>' in page
    assert field(page, "lag_text") == "0.0 s" and field(page, "dead_letters_text") == "0"


def test_an_unreachable_api_leaves_the_card_with_the_reason(unused_url):
    client = ui_client(unused_url)
    response = client.get("/")
    view = initial_view(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "unreachable" in view["error"] and view["points"] == []
    assert client.get("/overview.json").get_json()["ingest"]["error"] == view["error"]
