"""What the UI's route tests (tests/test_ui_routes.py) run against: a real Replay API process over
an SQLite store seeded with SEED's events, plus one event whose payload carries markup (EVIL), that
wants API_KEY. Nothing is mocked: the UI reaches the API over HTTP, the API reads the store and
publishes to the test broker."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from eventreplay.store import NewEvent, open_store
from tests.support.events import new_event
from tests.support.processes import ProgramProcess, start_api
from tests.support.stores import seed

API_KEY = "route-test-key-" + uuid.uuid4().hex
EVIL = '</pre><script>alert("x")</script>'

# What the store holds: enough types for a chart, enough events for paging, and one type large
# enough that a rate-limited replay of it runs long enough to be cancelled from the page.
SEED = {
    "OrderPlaced": 120,
    "PaymentProcessed": 60,
    "UserRegistered": 35,
    "ProductViewed": 1500,
    "OrderShipped": 12,
}


def seeded_events(counts: dict[str, int] = SEED) -> list[NewEvent]:
    """The events as the consumer would have stored them, in time order, spread over the last hour
    so that time windows have something to cut; the i-th of each type has order_id ORD-0000i."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    events = []
    for type_index, (event_type, count) in enumerate(counts.items()):
        for i in range(count):
            moment = start + timedelta(seconds=(i * 3600 / max(count, 1)) + type_index * 0.001)
            events.append(new_event(event_type, timestamp=moment, n=i, order_id=f"ORD-{i:05d}"))
    events.sort(key=lambda e: e.timestamp)
    return events


def start_seeded_api(amqp_url: str, folder: Path) -> ProgramProcess:
    """The API over a store in `folder` holding SEED and the EVIL event (its id: `evil_event_id`)."""
    store_url = f"sqlite:///{folder / 'events.db'}"
    evil = new_event("OrderPlaced", note=EVIL)
    with open_store(store_url) as store:
        seed(store, seeded_events() + [evil])
    server = start_api(store_url, amqp_url, folder / "replay-api.log", api_key=API_KEY)
    server.evil_event_id = evil.event_id
    return server
