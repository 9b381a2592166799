"""The management UI in a real browser (Debian's chromium via Playwright) against the real system:
RabbitMQ, a store filled by the consumer from simulated events, the Replay API, the UI.

Each test saves screenshots of the pages it visits under `<--output>/screenshots/` (default
test-results/screenshots/), at desktop width and at phone width (390 px) where it matters.
"""
from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.screens import shot
from tests.support.amqp import delete_queue, drain, publish_simulated
from tests.support.names import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_URL = re.compile(r"/replays/([0-9a-f-]{36})$")


def number(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def fill_replay_form(page: Page, system, event_type: str, queue: str) -> None:
    """The overview's replay form with a type, a target queue and "Create the queue if missing"."""
    page.goto(system.ui + "/")
    page.get_by_label("Event type", exact=True).fill(event_type)
    page.get_by_label("Target queue").fill(queue)
    page.get_by_label("Create the queue if missing").check()


def post_replay_form(page: Page) -> int:
    """Click "Start replay"; the status the form's POST was answered with."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Start replay").click()
    return posted.value.status


def test_overview_shows_the_archive_with_live_counts(page: Page, system, screenshots):
    page.goto(system.ui + "/")
    expect(page).to_have_title("Overview · Event Replay")
    expect(page.locator("[data-total]")).to_have_text(number(sum(system.counts.values())))
    expect(page.locator("[data-chart] li")).to_have_count(len(system.counts))
    expect(page.locator("[data-ready]")).to_contain_text("store: ok")
    expect(page.locator("[data-ready]")).to_contain_text("broker: ok")
    biggest = max(system.counts, key=system.counts.get)
    expect(page.locator("[data-chart] li").first).to_contain_text(biggest)
    assert page.request.get(system.ui + "/favicon.ico").ok

    # live: events the consumer archives now show up without a reload...
    before = sum(system.counts.values())
    publish_simulated(system.amqp_url, system.exchange, 20, seed=7, types=["UserLoggedOut"])
    expect(page.locator("[data-total]")).to_have_text(number(before + 20), timeout=15_000)
    system.counts["UserLoggedOut"] += 20
    # ...and so does a replay started elsewhere, in "Recent replays", with its buttons
    queue = unique("ui-recent")
    response = httpx.post(f"{system.api}/replay", headers={"X-API-Key": system.api_key}, timeout=10, json={
        "event_type": "OrderShipped", "limit": 3, "target_queue": queue, "create_queue": True})
    assert response.status_code == 202, response.text
    row = page.locator(f'tr.job[data-job-id="{response.json()["id"]}"]')
    expect(row.locator('[data-field="state"]')).to_have_text("completed")
    expect(row.locator('[data-field="progress_text"]')).to_have_text("3 of 3")
    expect(row.get_by_role("link")).to_have_attribute("href", f"/replays/{response.json()['id']}")
    shot(page, screenshots, "overview")
    shot(page, screenshots, "overview-phone", phone=True)
    delete_queue(system.amqp_url, queue)


def test_field_errors_are_shown_beside_the_fields(page: Page, system, screenshots):
    page.goto(system.ui + "/")
    page.get_by_text("More options").click()
    page.get_by_label("Limit").fill("0")
    page.get_by_label("Rate (events/s)").fill("10")
    page.get_by_label("Speed (× original spacing)").fill("2")
    page.get_by_role("button", name="Start replay").click()
    expect(page.locator("#event_type-error")).to_have_text("Choose an event type.")
    expect(page.locator("#target_queue-error")).to_have_text("Enter the queue to replay into.")
    expect(page.locator("#limit-error")).to_contain_text("at least 1")
    expect(page.locator("#speed-error")).to_have_text("Use a rate or a speed, not both.")
    expect(page.get_by_label("Limit")).to_have_attribute("aria-invalid", "true")
    shot(page, screenshots, "replay-form-errors")
    shot(page, screenshots, "replay-form-errors-phone", phone=True)


def test_all_event_types_and_a_routing_key_without_an_exchange(page: Page, system, screenshots):
    queue = unique("ui-all-types")
    page.goto(system.ui + "/")
    page.get_by_label("All event types").check()
    page.get_by_label("Target queue").fill(queue)
    page.get_by_text("More options").click()
    page.get_by_label("Routing key").fill("order-events")
    assert post_replay_form(page) == 422
    # the routing key is not dropped: it is named beside its field, which stays in view
    expect(page.locator("#routing_key-error")).to_have_text(
        "A routing key goes with a target exchange; leave it empty for a queue.")
    expect(page.get_by_label("Routing key")).to_be_visible()
    expect(page.get_by_label("All event types")).to_be_checked()
    expect(page.locator("#event_type-error")).to_have_count(0)  # "all" stood in for a type
    shot(page, screenshots, "replay-form-routing-key")
    jobs = httpx.get(f"{system.api}/replays", timeout=5).json()
    assert not [job for job in jobs if job["request"].get("target_queue") == queue]

    page.get_by_label("Routing key").fill("")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-preview-count]")).to_have_text(number(sum(system.counts.values())))


def test_choose_a_type_preview_start_and_watch_it_complete(page: Page, system, screenshots):
    event_type = "OrderPlaced"
    expected = system.counts[event_type]
    queue = unique("ui-browser")
    fill_replay_form(page, system, event_type, queue)

    page.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-preview-count]")).to_have_text(number(expected))
    expect(page.locator(".preview tbody tr")).to_have_count(min(5, expected))
    expect(page.get_by_label("Target queue")).to_have_value(queue)  # the form keeps what was typed
    shot(page, screenshots, "replay-preview")

    # paced so that the page shows it running, then watches it finish without a reload
    page.get_by_text("More options").click()
    page.get_by_label("Rate (events/s)").fill(str(max(1, expected // 3)))
    page.get_by_role("button", name="Start replay").click()
    expect(page).to_have_url(JOB_URL)
    job_id = JOB_URL.search(page.url).group(1)
    expect(page).to_have_title(f"Replay {job_id[:8]} · Event Replay")
    detail = page.locator(".job-detail")
    expect(detail.locator('[data-field="state"]')).to_have_text(re.compile("pending|running"))
    page.wait_for_timeout(1500)
    shot(page, screenshots, "replay-running")
    expect(detail.locator('[data-field="state"]')).to_have_text("completed", timeout=30_000)
    expect(detail.locator('[data-field="percent_text"]')).to_have_text("100%")
    expect(detail.locator('progress[data-field="percent"]')).to_have_js_property("value", 100)
    expect(detail.locator('[data-field="progress_text"]')).to_have_text(f"{number(expected)} of {number(expected)}")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    shot(page, screenshots, "replay-completed")
    shot(page, screenshots, "replay-completed-phone", phone=True)

    messages = drain(system.amqp_url, queue)
    delete_queue(system.amqp_url, queue)
    assert len(messages) == expected
    assert {json.loads(body)["event_type"] for _, _, body in messages} == {event_type}
    assert {props.headers["x-replay-id"] for _, props, _ in messages} == {job_id}

    page.goto(system.ui + "/replays/")
    expect(page).to_have_title("Replays · Event Replay")
    row = page.locator(f'tr.job[data-job-id="{job_id}"]')
    expect(row.locator('[data-field="state"]')).to_have_text("completed")
    expect(row.locator('[data-field="percent_text"]')).to_have_text("100%")


def test_cancel_a_long_replay_from_the_replays_page(page: Page, system, screenshots):
    event_type = max(system.counts, key=system.counts.get)
    queue = unique("ui-long")
    fill_replay_form(page, system, event_type, queue)
    page.get_by_text("More options").click()
    page.get_by_label("Rate (events/s)").fill("25")
    page.get_by_role("button", name="Start replay").click()
    expect(page).to_have_url(JOB_URL)
    job_id = JOB_URL.search(page.url).group(1)
    try:
        page.goto(system.ui + "/replays/")
        row = page.locator(f'tr.job[data-job-id="{job_id}"]')
        expect(row.locator('[data-field="state"]')).to_have_text("running")
        # the bar moves without a reload
        expect(row.locator('[data-field="progress_text"]')).not_to_have_text(re.compile(r"^0 of"), timeout=10_000)
        shot(page, screenshots, "replays-running")
        row.get_by_role("button", name="Cancel").click()
        expect(row.locator('[data-field="state"]')).to_have_text("cancelled", timeout=15_000)
        expect(row.get_by_role("button", name="Resume")).to_be_visible()
        expect(row.get_by_role("button", name="Cancel")).to_be_hidden()
        job = httpx.get(f"{system.api}/replays/{job_id}", timeout=5).json()
        assert job["state"] == "cancelled" and 0 < job["published"] < job["matched"]
        shot(page, screenshots, "replays")
        shot(page, screenshots, "replays-phone", phone=True)
    finally:
        httpx.post(f"{system.api}/replays/{job_id}/cancel", headers={"X-API-Key": system.api_key}, timeout=5)
        delete_queue(system.amqp_url, queue)


def test_a_form_posted_without_its_csrf_token_is_refused(page: Page, system, screenshots):
    queue = unique("ui-csrf")
    fill_replay_form(page, system, "OrderPlaced", queue)
    page.locator("form.replay-form input[name=csrf_token]").evaluate("input => input.remove()")
    assert post_replay_form(page) == 400
    expect(page).to_have_title("Form refused · Event Replay")
    expect(page.locator("main")).to_contain_text("security token is missing")
    jobs = httpx.get(f"{system.api}/replays", timeout=5).json()
    assert not [job for job in jobs if job["request"].get("target_queue") == queue]
    shot(page, screenshots, "csrf-refused")


def test_browse_the_events_and_open_one(page: Page, system, screenshots):
    page.goto(system.ui + "/events/")
    expect(page).to_have_title("Events · Event Replay")
    page.get_by_role("group", name="Event types").get_by_role("checkbox", name=re.compile(r"^OrderPlaced ")).check()
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(min(25, system.counts["OrderPlaced"]))
    expect(rows.locator('[data-label="Type"]').first).to_have_text("OrderPlaced")
    shot(page, screenshots, "events")
    page.get_by_role("link", name="Next ›").click()
    expect(page.locator("table.events caption")).to_contain_text("Page 2")
    shot(page, screenshots, "events-phone", phone=True)

    rows.first.locator("a").click()
    expect(page).to_have_title(re.compile(r"^Event [0-9a-f]{8} · Event Replay$"))
    body = page.get_by_label("Event body (JSON)")
    expect(body).to_contain_text('"event_type": "OrderPlaced"')
    expect(body).to_contain_text('\n  "event_id": ')  # pretty-printed
    expect(page.locator("dl.facts")).to_contain_text("order-events")
    shot(page, screenshots, "event-detail")
    shot(page, screenshots, "event-detail-phone", phone=True)


def test_search_events_by_payload_match(page: Page, system, screenshots):
    page.goto(system.ui + "/events/")
    match = page.get_by_label("Payload match (JSON object)")
    match.fill('{"order_id": ')
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#match-error")).to_contain_text("not valid JSON")
    expect(match).to_have_attribute("aria-invalid", "true")
    shot(page, screenshots, "events-match-invalid")
    # one order's history: take an order id from a stored event, then search for it
    order_id = next(e["body"]["order_id"] for e in httpx.get(
        f"{system.api}/events", params={"event_type": "OrderPlaced", "limit": 50}, timeout=5).json()["items"]
        if isinstance(e["body"], dict) and e["body"].get("order_id"))
    match.fill(json.dumps({"order_id": order_id}))
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.events tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#match-error")).to_have_count(0)
    for event_id in rows.locator("a").all_text_contents():
        body = httpx.get(f"{system.api}/events/{event_id}", timeout=5).json()["body"]
        assert body["order_id"] == order_id
    shot(page, screenshots, "events-match")
