"""The browser tests' real system: RabbitMQ (the test broker), the consumer (`consumer.py`) filling
a fresh SQLite store with events from the simulator library, the Replay API and the UI as
subprocesses, and Debian's chromium driven by Playwright (pytest-playwright's fixtures).

Screenshots go to `<--output>/screenshots/<page>.png` (default test-results/screenshots/).
"""
from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pika
import pytest

from eventreplay.broker import ArchiveTopology
from tests.browser.system import Server, base_env, publish_simulated, start_api, start_ui
from tests.conftest import unique

SIMULATED_EVENTS = 3000  # enough for every type, paging, and a rate-limited replay long enough to cancel
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium at /usr/bin/chromium, never a browser downloaded by Playwright."""
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `./run test` installs it (apt-get install chromium)", False)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS,
            "headless": True}


@pytest.fixture(scope="session")
def screenshots(pytestconfig) -> Path:
    folder = Path(pytestconfig.getoption("--output")).resolve() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class System:
    ui: str
    api: str
    api_key: str
    amqp_url: str
    exchange: str  # the archived exchange: publish here and the running consumer stores it
    counts: dict[str, int]


def _wait_archived(api_url: str, expected: int, consumer: Server, timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {t["event_type"]: t["count"] for t in httpx.get(f"{api_url}/event-types", timeout=5).json()}
        if sum(counts.values()) >= expected:
            return counts
        if consumer.process.poll() is not None:
            raise RuntimeError(f"the consumer exited:\n{consumer.log()}")
        time.sleep(0.2)
    raise RuntimeError(f"the consumer archived {sum(counts.values())} of {expected} events in {timeout} s:\n{consumer.log()}")


@pytest.fixture(scope="session")
def system(amqp_url, tmp_path_factory) -> System:
    folder = tmp_path_factory.mktemp("ui-browser")
    store_url = f"sqlite:///{folder / 'events.db'}"
    tag = unique("ui")
    topology = ArchiveTopology(f"{tag}-exchange", f"{tag}-archive", f"{tag}-archive.dead-letter")
    # Short-lived connections: an idle BlockingConnection kept for the whole session sends no
    # heartbeats, and the broker drops it before teardown.
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        topology.declare(connection.channel())  # bound before the first event is published
    api_key = "browser-test-" + uuid.uuid4().hex

    consumer = Server(
        "consumer", [sys.executable, "consumer.py"],
        base_env(EVENT_STORE_URL=store_url, AMQP_URL=amqp_url, EXCHANGE=topology.exchange,
                 ARCHIVE_QUEUE=topology.queue, DEAD_LETTER_QUEUE=topology.dead_letter_queue),
        port=0, log_path=folder / "consumer.log")
    api = ui = None
    try:
        api = start_api(store_url, amqp_url, api_key, folder)
        consumer.launch()
        publish_simulated(amqp_url, topology.exchange, SIMULATED_EVENTS, seed=4242)
        counts = _wait_archived(api.url, SIMULATED_EVENTS, consumer)
        ui = start_ui(api.url, api_key, folder)
        yield System(ui=ui.url, api=api.url, api_key=api_key, amqp_url=amqp_url, exchange=topology.exchange,
                     counts=counts)
    finally:
        for server in (ui, api, consumer):
            if server is not None:
                server.stop()
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            channel = connection.channel()
            for queue in (topology.queue, topology.dead_letter_queue):
                channel.queue_delete(queue)
            channel.exchange_delete(topology.exchange)
