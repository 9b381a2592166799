"""The Dead letters page in a real browser against the real system (tests/browser/conftest.py):
poison messages published to the archived exchange, dead-lettered by the running consumer, listed,
redriven (still bad: they come back with their reason) and discarded after a confirmation."""
from __future__ import annotations

import json
import uuid

import httpx
import pika
import pytest
from playwright.sync_api import Page, expect

from tests.browser.screens import shot
from tests.support.amqp import publish_raw
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def marked_letters(system, marker: str) -> list[dict]:
    """This test's dead letters as the API lists them (other tests may dead-letter their own)."""
    listing = httpx.get(f"{system.api}/dead-letters", params={"limit": 1000}, timeout=10).raise_for_status().json()
    return [item for item in listing["items"] if marker in item["preview"]]


def test_dead_letters_are_listed_redriven_and_discarded(page: Page, system, screenshots):
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    publish_raw(system.amqp_url, system.exchange, [
        ("dlq-test", json.dumps({"marker": marker, "n": n}).encode(), pika.BasicProperties(content_type="application/json"))
        for n in range(3)])
    letters = wait_for(lambda: (found := marked_letters(system, marker)) and len(found) == 3 and found,
                       timeout=20, what="3 dead letters listed by the API")
    reason = letters[0]["reason"]

    page.goto(system.ui + "/dead-letters/")
    expect(page).to_have_title("Dead letters · Event Replay")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters")).to_have_attribute(
        "aria-current", "page")
    rows = page.locator("tr.dead-letter", has_text=marker)
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text(reason)
    expect(rows.first).to_contain_text("dlq-test")
    expect(page.locator(".reason-filter", has_text=reason)).to_be_visible()
    shot(page, screenshots, "dead-letters")
    shot(page, screenshots, "dead-letters-phone", phone=True)

    # the reason filter
    page.locator(".reason-filter", has_text=reason).first.click()
    expect(page.locator("tr.dead-letter .reason").first).to_have_text(reason)

    # redrive two selected: still bad, they come back (new ids), the third stays as it was
    page.goto(system.ui + "/dead-letters/")
    chosen = [letters[0]["id"], letters[1]["id"]]
    for letter_id in chosen:
        page.locator(f'tr.dead-letter[data-id="{letter_id}"] input[name="ids"]').check()
    page.get_by_role("button", name="Redrive selected").click()
    expect(page.locator(".notice-success")).to_contain_text("Redriven: 2 dead letters (2 selected)")

    def came_back():
        found = marked_letters(system, marker)
        ids = {item["id"] for item in found}
        return len(found) == 3 and letters[2]["id"] in ids and not ids & set(chosen) and found
    back = wait_for(came_back, timeout=20, what="the redriven dead letters back with new ids")
    assert {item["reason"] for item in back} == {reason}

    # discard: asks first; dismissed, nothing happens
    page.goto(system.ui + "/dead-letters/")
    for item in back:
        page.locator(f'tr.dead-letter[data-id="{item["id"]}"] input[name="ids"]').check()
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Discard selected").click()
    expect(page.locator("tr.dead-letter", has_text=marker)).to_have_count(3)
    assert questions == ["Discard 3 selected dead letters for good?"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Discard selected").click()
    expect(page.locator(".notice-success")).to_contain_text("Discarded: 3 dead letters (3 selected)")
    expect(page.locator("tr.dead-letter", has_text=marker)).to_have_count(0)
    assert marked_letters(system, marker) == []

    # nothing selected: a readable message, nothing done
    if page.locator("tr.dead-letter").count():
        page.get_by_role("button", name="Redrive selected").click()
        expect(page.locator(".notice-error")).to_contain_text("Select at least one dead letter first.")
