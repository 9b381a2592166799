"""The overview's ingest card in a real browser against the real system (tests/browser/conftest.py):
the events-per-minute chart the page's own script draws (60 bars, one title each), the consumer
state from the broker, and live updates as the running consumer archives new events."""
from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.screens import shot
from tests.support.amqp import publish_simulated

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chart_total(page: Page) -> int:
    return page.evaluate("""() => Array.from(document.querySelectorAll('[data-timeseries] g.ts-minute'))
        .reduce((sum, g) => sum + Number(g.getAttribute('data-count')), 0)""")


def test_the_overview_charts_events_per_minute_and_updates_live(page: Page, system, screenshots):
    page.goto(system.ui + "/")
    card = page.locator("[data-live-ingest]")
    minutes = card.locator("[data-timeseries] g.ts-minute")
    expect(minutes).to_have_count(60)
    expect(card.locator("[data-timeseries] rect.ts-bar")).to_have_count(60)
    # every minute has its tooltip; the axes are labelled (y: 0 and the top, x: times every 15 min)
    expect(card.locator("[data-timeseries] g.ts-minute > title")).to_have_count(60)
    assert minutes.last.locator("title").text_content().endswith(("event", "events"))
    assert card.locator("[data-timeseries] text.ts-y").first.text_content() == "0"
    assert card.locator("[data-timeseries] text.ts-x").count() == 5
    expect(card.locator("[data-timeseries-empty]")).to_be_hidden()

    # what the chart shows is what the API counts, and the simulator's events are in it
    api_counts = [m["count"] for m in httpx.get(f"{system.api}/ingest", timeout=10).json()["per_minute"]]
    assert sum(api_counts) >= sum(system.counts.values()) > 0
    page.wait_for_function("n => Array.from(document.querySelectorAll('[data-timeseries] g.ts-minute'))"
                           ".reduce((s, g) => s + Number(g.getAttribute('data-count')), 0) >= n",
                           arg=sum(api_counts))
    before = chart_total(page)
    # the running consumer reads the test's archive queue: connected, nothing waiting
    expect(card.locator('[data-ingest-field="consumer"]')).to_have_text("connected")
    expect(card.locator('[data-ingest-field="queue_text"]')).to_contain_text("(1 consumer)")
    expect(card.locator('[data-ingest-field="queue_text"]')).to_contain_text("0 waiting in")
    expect(card.locator('[data-ingest-field="dead_letters_text"]')).to_have_attribute("href", "/dead-letters")
    shot(page, screenshots, "overview-ingest")

    # live: new events show in the current minute without a reload
    publish_simulated(system.amqp_url, system.exchange, 25, seed=12, types=["ProductViewed"])
    page.wait_for_function("n => Array.from(document.querySelectorAll('[data-timeseries] g.ts-minute'))"
                           ".reduce((s, g) => s + Number(g.getAttribute('data-count')), 0) >= n",
                           arg=before + 25, timeout=20_000)
    expect(minutes).to_have_count(60)
    # in the current minute (or the one before, had it just turned)
    assert sum(int(minutes.nth(i).get_attribute("data-count")) for i in (58, 59)) >= 25
    system.counts["ProductViewed"] = system.counts.get("ProductViewed", 0) + 25
    shot(page, screenshots, "overview-ingest-phone", phone=True)
