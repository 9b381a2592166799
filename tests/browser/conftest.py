"""The browser tests' real system: RabbitMQ (the test broker), the consumer (`consumer.py`) filling
a fresh SQLite store with events from the simulator library, the Replay API and the UI as
subprocesses, and Debian's chromium driven by Playwright (pytest-playwright's fixtures).

Screenshots go to `<--output>/screenshots/<page>.png` (default test-results/screenshots/).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.screens import DESKTOP
from tests.browser.system import System, wait_archived
from tests.support.amqp import declared_archive, publish_simulated
from tests.support.ingest import consumer_env
from tests.support.names import archive_names, unique
from tests.support.processes import consumer_program, start_api, start_ui

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


@pytest.fixture(scope="session")
def system(amqp_url, tmp_path_factory) -> System:
    folder = tmp_path_factory.mktemp("ui-browser")
    store_url = f"sqlite:///{folder / 'events.db'}"
    names = archive_names(unique("ui"))
    api_key = "browser-test-" + uuid.uuid4().hex
    consumer = consumer_program(consumer_env(amqp_url, store_url, names, LOG_LEVEL="WARNING"), folder / "consumer.log")
    api = ui = None
    # the archive is bound before the first event is published
    with declared_archive(amqp_url, names):
        try:
            # the API watches the test's own archive queues (the overview's consumer state, dead letters)
            api = start_api(store_url, amqp_url, folder / "replay-api.log", api_key=api_key,
                            ARCHIVE_QUEUE=names["archive_queue"], DEAD_LETTER_QUEUE=names["dead_letter_queue"])
            consumer.start()
            publish_simulated(amqp_url, names["exchange"], SIMULATED_EVENTS, seed=4242)
            counts = wait_archived(api.url, SIMULATED_EVENTS, consumer)
            ui = start_ui(api.url, folder / "management-ui.log", api_key=api_key, secret_key="browser-test-secret")
            yield System(ui=ui.url, api=api.url, api_key=api_key, amqp_url=amqp_url, exchange=names["exchange"],
                         counts=counts)
        finally:
            for server in (ui, api, consumer):
                if server is not None:
                    server.stop()


@pytest.fixture
def page(page: Page, system) -> Page:
    """A desktop-sized page that fails the test on any script error or refused resource."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # console errors: script errors and CSP refusals. A page answered 4xx on purpose (a refused
    # form) is logged there too: resource failures are checked by type below instead.
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("response", lambda response: problems.append(f"{response.status} for {response.url}")
            if response.status >= 400 and response.request.resource_type != "document" else None)
    page.set_viewport_size(DESKTOP)
    page.set_default_timeout(15_000)
    yield page
    assert not problems, problems
