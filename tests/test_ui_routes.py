"""Route tests of the management UI with Flask's test client, against a running Replay API (a
uvicorn subprocess over a seeded store, publishing to the test broker): no mocked API. The fixtures
`seeded_api`, `ui_app` and `ui_client` are that API and the UI over it (tests/support/seeded_api.py)."""
from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from eventreplay.ui import create_app
from tests.support.amqp import delete_queue, queue_depth
from tests.support.api import wait_job
from tests.support.names import unique
from tests.support.seeded_api import API_KEY, EVIL, SEED


def csrf_token(client, path="/") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def api_headers():
    return {"X-API-Key": API_KEY}


# -- overview and the replay form -----------------------------------------------------------------

def test_overview_shows_counts_by_type_total_and_readiness(ui_client):
    response = ui_client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<title>Overview · Event Replay</title>" in page
    for event_type in SEED:
        assert event_type in page
    assert '<option value="ProductViewed" label="1\u202f500 stored">' in page  # the type picker shows counts
    total = sum(SEED.values()) + 1
    assert f"{total:,}".replace(",", "\u202f") in page
    assert "<strong>store</strong>: ok" in page and "<strong>broker</strong>: ok" in page


def test_overview_json_feeds_the_live_counts(ui_client):
    data = ui_client.get("/overview.json").get_json()
    counts = {row["event_type"]: row["count"] for row in data["chart"]}
    assert counts["ProductViewed"] == SEED["ProductViewed"]
    assert data["total"] == sum(SEED.values()) + 1
    assert data["ready"] == {"store": "ok", "broker": "ok"}
    assert data["error"] is None


def test_prototype_form_post_starts_a_replay_into_the_queue(ui_client, seeded_api, amqp, amqp_url):
    queue = unique("ui-proto")
    amqp.channel().queue_declare(queue, durable=True)
    try:
        token = csrf_token(ui_client)
        # exactly the prototype's two fields, plus the token
        response = ui_client.post("/", data={"event_type": "OrderShipped", "target_queue": queue, "csrf_token": token})
        assert response.status_code == 302
        job_id = re.fullmatch(r"/replays/([0-9a-f-]{36})", response.headers["Location"]).group(1)
        job = wait_job(seeded_api.client, job_id, timeout=60)
        assert job["state"] == "completed"
        assert queue_depth(amqp_url, queue) == SEED["OrderShipped"]
        page = ui_client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Replay started" in page  # the flash message
        assert "completed" in page and '<strong data-field="percent_text">100%</strong>' in page
    finally:
        delete_queue(amqp_url, queue)


def test_a_post_without_csrf_token_is_refused_with_a_readable_page(ui_client, seeded_api):
    before = len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json())
    response = ui_client.post("/", data={"event_type": "OrderShipped", "target_queue": unique("q")})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Form refused" in page and "security token" in page
    assert "Traceback" not in page
    assert len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json()) == before  # nothing started


def test_preview_shows_the_count_and_samples_and_publishes_nothing(ui_client, seeded_api):
    token = csrf_token(ui_client)
    before = len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json())
    response = ui_client.post("/", data={"event_type": "PaymentProcessed", "limit": "7", "preview": "Preview",
                                      "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert re.search(r"<strong data-preview-count>7</strong> events would be replayed", page)
    assert page.count("<td>PaymentProcessed</td>") == 5  # the API's up to 5 samples
    assert len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json()) == before


def test_several_types_and_a_time_window_are_sent_to_the_api(ui_client):
    token = csrf_token(ui_client)
    response = ui_client.post("/", data={
        "event_types": ["OrderShipped", "UserRegistered"], "since": "2000-01-01T00:00", "until": "2999-01-01T00:00",
        "preview": "Preview", "csrf_token": token,
    })
    page = response.get_data(as_text=True)
    total = SEED["OrderShipped"] + SEED["UserRegistered"]
    assert re.search(rf"<strong data-preview-count>{total}</strong> events would be replayed", page), page
    response = ui_client.post("/", data={"event_type": "OrderShipped", "since": "2999-01-01T00:00",
                                      "preview": "Preview", "csrf_token": token})
    assert "<strong data-preview-count>0</strong> events would be replayed" in response.get_data(as_text=True)


def test_field_errors_are_shown_beside_the_fields(ui_client):
    token = csrf_token(ui_client)
    response = ui_client.post("/", data={"event_type": "", "target_queue": "", "limit": "0", "rate": "5", "speed": "2",
                                      "match": "{not json", "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    for field, message in [("event_type", "Choose an event type."), ("target_queue", "Enter the queue to replay into."),
                           ("limit", "Number must be at least 1."), ("speed", "Use a rate or a speed, not both."),
                           ("match", "not valid JSON")]:
        block = re.search(rf'<ul id="{field}-error" class="errors">(.*?)</ul>', page, re.S)
        assert block and message in block.group(1), (field, page)
        assert f'aria-describedby="{field}-help {field}-error"' in page or f'aria-describedby="{field}-error"' in page


def field_error(page: str, field: str) -> str:
    block = re.search(rf'<ul id="{field}-error" class="errors">(.*?)</ul>', page, re.S)
    return block.group(1) if block else ""


@pytest.mark.parametrize("field, value, message", [
    ("rate", "inf", "Enter a finite number."),
    ("rate", "nan", "Enter a finite number."),
    ("rate", "1e999", "Enter a finite number."),
    ("speed", "-inf", "Enter a finite number."),
    ("speed", "NaN", "Enter a finite number."),
    ("match", '{"order_id": NaN}', "must be a finite number"),
    ("match", '{"order_id": Infinity}', "must be a finite number"),
    ("match", '{"order_id": ' + "7" * 5000 + "}", "a number in it is too long"),
    ("match", "[" * 1999, "nested too deeply"),
    ("match", '{"a": ' + "[" * 400 + "]" * 400 + "}", "plain value"),
])
def test_values_json_cannot_carry_are_field_errors_not_500(ui_client, field, value, message):
    token = csrf_token(ui_client)
    for button in ({"preview": "Preview"}, {}):
        response = ui_client.post("/", data={"event_type": "OrderShipped", "target_queue": unique("never"),
                                          field: value, "csrf_token": token, **button})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, (field, value[:40], response.status_code)
        assert message in field_error(page, field), (field, value[:40], field_error(page, field))


def test_a_request_the_client_cannot_encode_is_a_readable_error(seeded_api):
    from eventreplay.ui.api_client import ApiError, ReplayApiClient

    client = ReplayApiClient(seeded_api.url, API_KEY)
    try:
        for request in ({"event_type": "OrderShipped", "target_queue": "q", "rate": float("inf")},
                        {"event_type": "OrderShipped", "match": {"order_id": float("nan")}}):
            with pytest.raises(ApiError) as raised:
                client.dry_run(request)
            assert raised.value.status == 422 and not raised.value.unreachable
            assert raised.value.message.startswith("The request could not be sent to the Replay API")
        assert client.dry_run({"event_type": "OrderShipped"})["matched"] >= 0  # the client still works
    finally:
        client.close()


def test_a_missing_queue_is_explained_beside_the_queue_field(ui_client):
    token = csrf_token(ui_client)
    queue = unique("missing")
    response = ui_client.post("/", data={"event_type": "OrderShipped", "target_queue": queue, "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    # the form's own words, not the API's advice to API clients ("send "create_queue": true")
    assert field_error(page, "target_queue") == (
        f"<li>Queue &#39;{queue}&#39; does not exist. Tick “Create the queue if missing” to declare it.</li>")
    assert "&#34;create_queue&#34;: true" not in page and "create it first" not in page


def test_a_missing_exchange_is_explained_beside_the_exchange_field(ui_client):
    token = csrf_token(ui_client)
    exchange = unique("no-exchange")
    response = ui_client.post("/", data={"event_type": "OrderShipped", "target_exchange": exchange,
                                         "csrf_token": token})
    assert response.status_code == 404
    assert f"Exchange &#39;{exchange}&#39; does not exist." in field_error(response.get_data(as_text=True),
                                                                          "target_exchange")


@pytest.mark.parametrize("button", [{}, {"preview": "Preview"}])
def test_a_routing_key_with_a_queue_is_a_field_error_not_dropped(ui_client, seeded_api, button):
    token = csrf_token(ui_client)
    before = len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json())
    response = ui_client.post("/", data={"event_type": "OrderShipped", "target_queue": unique("rk"),
                                      "routing_key": "order-events", "csrf_token": token, **button})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "A routing key goes with a target exchange; leave it empty for a queue." in field_error(page, "routing_key")
    assert re.search(r'<details class="more"\s+open>', page)  # the field with the error is in view
    assert len(httpx.get(f"{seeded_api.url}/replays", timeout=5).json()) == before  # nothing started


def test_a_routing_key_with_an_exchange_is_sent_to_the_api(ui_app, ui_client, seeded_api):
    from werkzeug.datastructures import MultiDict

    from eventreplay.ui.forms import ReplayForm

    token = csrf_token(ui_client)
    response = ui_client.post("/", data={"event_type": "OrderShipped", "target_exchange": "ecommerce-exchange",
                                      "routing_key": "replayed.key", "preview": "Preview", "csrf_token": token})
    assert response.status_code == 200, field_error(response.get_data(as_text=True), "routing_key")
    with ui_app.test_request_context("/", method="POST"):
        form = ReplayForm(formdata=MultiDict({"event_type": "OrderShipped", "target_exchange": "x",
                                              "routing_key": "k"}), meta={"csrf": False})
        assert form.validate() and form.to_request()["routing_key"] == "k"
    # the API, too, refuses the combination the form now names
    answer = httpx.post(f"{seeded_api.url}/replay", headers=api_headers(), timeout=10,
                        json={"event_type": "OrderShipped", "target_queue": "q", "routing_key": "k"})
    assert answer.status_code == 422 and answer.json()["errors"]


def test_all_event_types_is_an_explicit_choice(ui_client, seeded_api, amqp_url):
    token = csrf_token(ui_client)
    total = sum(SEED.values()) + 1
    response = ui_client.post("/", data={"all_types": "y", "preview": "Preview", "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert f"<strong data-preview-count>{total:,}</strong>".replace(",", "\u202f") in page
    # the prototype's post with an empty type still asks for one: "all" is never a default
    response = ui_client.post("/", data={"event_type": "", "target_queue": "q", "csrf_token": token})
    assert response.status_code == 422
    assert "Choose an event type." in field_error(response.get_data(as_text=True), "event_type")
    # all types plus a named type: contradictory, said beside the box
    for named in ({"event_type": "OrderShipped"}, {"event_types": ["OrderShipped"]}):
        response = ui_client.post("/", data={"all_types": "y", **named, "preview": "Preview", "csrf_token": token})
        assert response.status_code == 422
        assert "Untick “All event types”" in field_error(response.get_data(as_text=True), "all_types")
    # a real replay of every type (limited): the job's request names no type
    queue = unique("ui-all")
    response = ui_client.post("/", data={"all_types": "y", "target_queue": queue, "create_queue": "y", "limit": "40",
                                      "csrf_token": token})
    try:
        assert response.status_code == 302, field_error(response.get_data(as_text=True), "all_types")
        job = wait_job(seeded_api.client, response.headers["Location"].rsplit("/", 1)[1], timeout=60)
        assert job["state"] == "completed" and job["published"] == 40
        assert "event_type" not in job["request"] and "event_types" not in job["request"]
        assert queue_depth(amqp_url, queue) == 40
        assert "all types" in ui_client.get(response.headers["Location"]).get_data(as_text=True)
    finally:
        delete_queue(amqp_url, queue)


def test_create_queue_declares_the_target(ui_client, seeded_api, amqp_url):
    queue = unique("ui-create")
    token = csrf_token(ui_client)
    response = ui_client.post("/", data={"event_type": "UserRegistered", "target_queue": queue, "create_queue": "y",
                                      "csrf_token": token})
    try:
        assert response.status_code == 302
        job = wait_job(seeded_api.client, response.headers["Location"].rsplit("/", 1)[1], timeout=60)
        assert job["state"] == "completed" and job["published"] == SEED["UserRegistered"]
        assert queue_depth(amqp_url, queue) == SEED["UserRegistered"]
    finally:
        delete_queue(amqp_url, queue)


# -- replays ----------------------------------------------------------------------------------------

def start_slow_replay(api, queue: str) -> str:
    response = httpx.post(f"{api.url}/replay", headers=api_headers(), timeout=10, json={
        "event_type": "ProductViewed", "target_queue": queue, "create_queue": True, "rate": 20})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_replays_page_lists_jobs_and_status_json_has_progress(ui_client, seeded_api, amqp_url):
    queue = unique("ui-list")
    job_id = start_slow_replay(seeded_api, queue)
    try:
        page = ui_client.get("/replays/").get_data(as_text=True)
        assert "<title>Replays · Event Replay</title>" in page
        assert f'data-job-id="{job_id}"' in page
        wait_job(seeded_api.client, job_id, states=("running",), timeout=60)
        data = ui_client.get("/replays/status.json").get_json()
        job = next(j for j in data["jobs"] if j["id"] == job_id)
        assert job["state"] == "running" and job["can_cancel"] and not job["can_resume"]
        assert job["matched"] == SEED["ProductViewed"]
        assert 0 <= job["percent"] < 100
        detail = ui_client.get(f"/replays/{job_id}.json").get_json()["job"]
        assert detail["id"] == job_id
    finally:
        httpx.post(f"{seeded_api.url}/replays/{job_id}/cancel", headers=api_headers(), timeout=10)
        wait_job(seeded_api.client, job_id, timeout=60)
        delete_queue(amqp_url, queue)


def test_cancel_and_resume_buttons_act_on_the_job(ui_client, seeded_api, amqp_url):
    queue = unique("ui-cancel")
    job_id = start_slow_replay(seeded_api, queue)
    try:
        token = csrf_token(ui_client, "/replays/")
        response = ui_client.post(f"/replays/{job_id}/cancel", data={"csrf_token": token, "next": f"/replays/{job_id}"})
        assert response.status_code == 302 and response.headers["Location"] == f"/replays/{job_id}"
        job = wait_job(seeded_api.client, job_id, timeout=60)
        assert job["state"] == "cancelled"
        # the fetch() path of the page's script answers JSON
        response = ui_client.post(f"/replays/{job_id}/resume", data={"csrf_token": token},
                               headers={"Accept": "application/json"})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["job"]["state"] in ("pending", "running")
        response = ui_client.post(f"/replays/{job_id}/cancel", data={"csrf_token": token},
                               headers={"Accept": "application/json"})
        assert response.get_json()["job"]["id"] == job_id
        wait_job(seeded_api.client, job_id, timeout=60)
        # cancelling an ended job: the API's 409 becomes a readable message, not an error page
        response = ui_client.post(f"/replays/{job_id}/cancel", data={"csrf_token": token}, follow_redirects=True)
        assert response.status_code == 200
        assert 'class="notice notice-error"' in response.get_data(as_text=True)
    finally:
        delete_queue(amqp_url, queue)


def test_cancel_without_csrf_token_is_refused(ui_client, seeded_api):
    response = ui_client.post(f"/replays/{uuid.uuid4()}/cancel")
    assert response.status_code == 400 and "Form refused" in response.get_data(as_text=True)


def test_unknown_job_is_a_readable_404(ui_client):
    response = ui_client.get(f"/replays/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)


# -- events -----------------------------------------------------------------------------------------

def test_events_page_filters_by_type_and_pages_forwards_and_back(ui_client):
    first = ui_client.get("/events/?event_type=OrderPlaced&limit=25")
    page = first.get_data(as_text=True)
    assert "<title>Events · Event Replay</title>" in page
    assert page.count('<td data-label="Type">OrderPlaced</td>') == 25
    next_link = re.search(r'<a class="button secondary small" href="([^"]+)" rel="next">', page).group(1).replace("&amp;", "&")
    second = ui_client.get(next_link).get_data(as_text=True)
    assert "Page 2" in second
    first_ids = set(re.findall(r"/events/([0-9a-f-]{36})", page))
    second_ids = set(re.findall(r"/events/([0-9a-f-]{36})", second))
    assert len(second_ids) == 25 and not first_ids & second_ids
    previous = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert set(re.findall(r"/events/([0-9a-f-]{36})", ui_client.get(previous).get_data(as_text=True))) == first_ids


def test_events_time_window_narrows_the_result(ui_client):
    page = ui_client.get("/events/?since=2999-01-01T00:00").get_data(as_text=True)
    assert "No events match" in page


def _event_ids(page: str) -> list[str]:
    return re.findall(r'<a href="/events/([0-9a-f-]{36})">', page)


def test_events_payload_match_shows_only_that_orders_events(ui_client, seeded_api):
    response = ui_client.get("/events/", query_string={"match": '{"order_id": "ORD-00003"}'})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    ids = _event_ids(page)
    # the seed gives every type an ORD-00003 (types with more than 3 events): one row each
    assert len(ids) == sum(1 for count in SEED.values() if count > 3)
    for event_id in ids:
        body = httpx.get(f"{seeded_api.url}/events/{event_id}", timeout=5).json()["body"]
        assert body["order_id"] == "ORD-00003"
    assert 'value="{&#34;order_id&#34;: &#34;ORD-00003&#34;}"' in page  # the field keeps what was typed, escaped


def test_events_match_and_several_types_are_combined_and_kept_across_pages(ui_client, seeded_api):
    query = [("event_type", "OrderPlaced"), ("event_type", "PaymentProcessed"),
             ("match", '{"order_id": "ORD-00003"}')]
    page = ui_client.get("/events/", query_string=query).get_data(as_text=True)
    types = re.findall(r'<td data-label="Type">([^<]+)</td>', page)
    assert sorted(types) == ["OrderPlaced", "PaymentProcessed"]
    ticked = re.findall(r'<input checked id="event_type-\d+" name="event_type" type="checkbox" value="([^"]+)">', page)
    assert sorted(ticked) == ["OrderPlaced", "PaymentProcessed"]
    # several types, one page of 25 after another: the pager keeps every type and the match
    page = ui_client.get("/events/", query_string=[("event_type", "OrderPlaced"), ("event_type", "UserRegistered"),
                                               ("limit", "25")]).get_data(as_text=True)
    next_link = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "event_type=OrderPlaced" in next_link and "event_type=UserRegistered" in next_link
    second = ui_client.get(next_link).get_data(as_text=True)
    assert set(re.findall(r'<td data-label="Type">([^<]+)</td>', second)) <= {"OrderPlaced", "UserRegistered"}
    assert not set(_event_ids(page)) & set(_event_ids(second))
    page = ui_client.get("/events/", query_string={"match": '{"order_id": "ORD-00001"}', "limit": "25"})
    page = page.get_data(as_text=True)
    assert "rel=\"next\"" not in page  # a handful of events: one page


@pytest.mark.parametrize("text, message", [
    ('{"order_id": ', "not valid JSON"),
    ('["o-1"]', "must be a JSON object of field names to plain values"),
    ('{"order_id": {"id": 1}}', "must be a plain value"),
    ('{"n": NaN}', "must be a finite number"),
    ("[" * 1900, "nested too deeply"),
    ('{"order_id": "' + "x" * 2000 + '"}', "Field cannot be longer than 2000 characters."),
])
def test_events_invalid_match_is_an_error_beside_the_field_not_500(ui_client, text, message):
    response = ui_client.get("/events/", query_string={"match": text})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Traceback" not in page
    error = re.search(r'<ul id="match-error" class="errors">(.*?)</ul>', page, re.S)
    assert error and message in error.group(1), page
    assert 'aria-invalid="true"' in page and "<table" not in page


def test_event_page_links_to_its_orders_history(ui_client, seeded_api):
    ids = _event_ids(ui_client.get("/events/", query_string={"match": '{"order_id": "ORD-00003"}'})
                     .get_data(as_text=True))
    page = ui_client.get(f"/events/{ids[0]}").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" data-history="order_id">', page).group(1).replace("&amp;", "&")
    assert set(_event_ids(ui_client.get(link).get_data(as_text=True))) == set(ids)


def test_events_match_is_echoed_escaped(ui_client):
    page = ui_client.get("/events/", query_string={"match": EVIL}).get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;/pre&gt;&lt;script&gt;" in page


def test_event_page_shows_pretty_json_and_metadata_escaped(ui_client, seeded_api):
    response = ui_client.get(f"/events/{seeded_api.evil_event_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"<title>Event {seeded_api.evil_event_id[:8]} · Event Replay</title>" in page
    assert '  &#34;event_type&#34;: &#34;OrderPlaced&#34;,' in page  # pretty-printed, escaped
    assert "<script>alert" not in page and "&lt;/pre&gt;&lt;script&gt;" in page
    for label in ("Position", "Routing key", "Exchange", "Received", "AMQP properties"):
        assert label in page
    assert "order-events" in page


def test_unknown_event_is_a_readable_404(ui_client):
    response = ui_client.get(f"/events/{uuid.uuid4()}")
    assert response.status_code == 404 and "Traceback" not in response.get_data(as_text=True)


def test_free_text_is_echoed_escaped(ui_client):
    token = csrf_token(ui_client)
    page = ui_client.post("/", data={"event_type": EVIL, "preview": "Preview", "csrf_token": token})
    page = page.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;/pre&gt;&lt;script&gt;" in page


# -- safety -----------------------------------------------------------------------------------------

def test_the_api_key_never_reaches_the_browser(ui_app, ui_client, seeded_api):
    assert API_KEY not in repr(dict(ui_app.config))  # templates can read app.config: it is not there
    job_id = httpx.get(f"{seeded_api.url}/replays", timeout=5).json()[0]["id"]
    event_id = seeded_api.evil_event_id
    for path in ("/", "/overview.json", "/replays/", "/replays/status.json", f"/replays/{job_id}",
                 f"/replays/{job_id}.json", "/events/", f"/events/{event_id}", "/static/app.js"):
        response = ui_client.get(path)
        assert response.status_code == 200, path
        assert API_KEY not in response.get_data(as_text=True), path
        assert API_KEY not in json.dumps(dict(response.headers)), path


def test_pages_forbid_foreign_origins_and_inline_script(ui_client):
    policy = ui_client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy


def test_static_assets_and_favicons_are_served_by_the_app(ui_client):
    page = ui_client.get("/").get_data(as_text=True)
    assert "http://" not in re.sub(r"<footer.*</footer>", "", page, flags=re.S)  # no CDN, no external font
    assert "https://" not in page
    for path in ("/static/style.css", "/static/app.js", "/static/favicon.svg", "/static/favicon.ico"):
        assert ui_client.get(path).status_code == 200, path


def test_an_unreachable_api_is_a_readable_message(unused_url):
    app = create_app({"TESTING": True, "REPLAY_API_URL": unused_url, "REPLAY_API_KEY": API_KEY})
    client = app.test_client()
    # the overview's main content is the form, which still works: 200 with the notice
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "unreachable" in page and "Traceback" not in page
    # pages whose content is the API's: 502 Bad Gateway with the same readable notice
    for path in ("/replays/", "/events/", "/events/?event_type=OrderPlaced&limit=25"):
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 502 and "unreachable" in page and "Traceback" not in page, path
    assert client.get("/replays/status.json").get_json()["error"]
    response = client.get(f"/events/{uuid.uuid4()}")
    assert response.status_code == 502 and "unreachable" in response.get_data(as_text=True)
    token = csrf_token(client)
    response = client.post("/", data={"event_type": "OrderPlaced", "target_queue": "q", "csrf_token": token})
    assert response.status_code == 502 and "unreachable" in response.get_data(as_text=True)


def test_a_wrong_api_key_is_explained(seeded_api):
    client = create_app({"TESTING": True, "REPLAY_API_URL": seeded_api.url,
                         "REPLAY_API_KEY": "wrong"}).test_client()
    token = csrf_token(client)
    response = client.post("/", data={"event_type": "OrderPlaced", "target_queue": "q", "csrf_token": token})
    assert "API key" in response.get_data(as_text=True)


def test_the_ui_binds_localhost_by_default(monkeypatch):
    from eventreplay.settings import Settings

    monkeypatch.delenv("UI_HOST", raising=False)
    monkeypatch.delenv("UI_PORT", raising=False)
    settings = Settings(_env_file=None)
    assert (settings.ui_host, settings.ui_port) == ("127.0.0.1", 5000)
