"""The archive as operators see it through the API and the UI: what it holds, the retention in force,
the indexed fields, and a replay that asks for what the retention deleted saying so."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from eventreplay.api import create_app as create_api
from eventreplay.retention import RetentionPolicy, prune_once
from eventreplay.ui import create_app as create_ui
from tests.support.api import api_settings
from tests.support.events import T0, series
from tests.support.stores import seed


@pytest.fixture
def retained_api(tmp_path, amqp_url):
    """The API in process over an SQLite file, keeping UserLoggedIn 7 days and the rest 30."""
    settings = api_settings(f"sqlite:///{tmp_path / 'events.db'}", amqp_url, retention="30d",
                            retention_by_type="UserLoggedIn=7d")
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        client.settings = settings
        yield client


def test_the_archive_endpoint_says_what_is_held_and_kept(retained_api):
    store = retained_api.app.state.services.store()
    store.index_fields(["order_id"])
    seed(store, series(40, step=timedelta(days=1), order_id="o1"))
    archive = retained_api.get("/archive").json()
    assert archive["events"] == 40
    assert archive["oldest_event"].startswith(T0.date().isoformat())
    assert archive["newest_event"].startswith((T0 + timedelta(days=39)).date().isoformat())
    assert archive["pruned_before"] is None
    assert archive["retention"] == "30 days for every type; UserLoggedIn: 7 days"
    assert archive["indexed_fields"] == [{"field": "order_id", "ready": True}]


def test_a_replay_over_a_pruned_range_says_so(retained_api, target_queue):
    store = retained_api.app.state.services.store()
    seed(store, series(40, step=timedelta(days=1)))
    now = T0 + timedelta(days=45)  # 30 days back from here: the first 15 days are gone
    assert prune_once(store, RetentionPolicy.from_settings(retained_api.settings), now=now) == 15
    archive = retained_api.get("/archive").json()
    assert archive["events"] == 25 and archive["pruned_before"].startswith((T0 + timedelta(days=15)).date().isoformat())

    everything = retained_api.post("/replay?wait=true", json={"target_queue": target_queue}).json()
    assert everything["state"] == "completed" and everything["confirmed"] == 25
    assert "deleted by the retention policy" in everything["notice"]
    recent = retained_api.post("/replay?wait=true", json={
        "target_queue": target_queue, "since": (T0 + timedelta(days=20)).isoformat()}).json()
    assert recent["notice"] is None  # nothing it asks for was pruned


def test_the_overview_shows_the_oldest_event_and_the_retention(seeded_api, ui_client):
    page = ui_client.get("/").get_data(as_text=True)
    oldest = re.search(r'data-archive-field="oldest_event">([^<]*)<', page).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", oldest), oldest
    assert re.search(r'data-archive-field="retention">for ever by default<', page)
    live = ui_client.get("/overview.json").get_json()
    assert live["archive"]["oldest_event"] == oldest and live["archive"]["retention"] == "for ever by default"
