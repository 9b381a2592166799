"""The real system the browser tests run against (tests/browser/conftest.py starts it): RabbitMQ,
the consumer (`consumer.py`) archiving what the simulator publishes into a fresh SQLite store, the
Replay API and the UI as processes. Nothing is mocked: the UI reaches the API over HTTP, the API
reads the store and publishes to the test broker."""
from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from tests.support.processes import ProgramProcess


@dataclass
class System:
    ui: str
    api: str
    api_key: str
    amqp_url: str
    exchange: str  # the archived exchange: publish here and the running consumer stores it
    counts: dict[str, int]


def wait_archived(api_url: str, expected: int, consumer: ProgramProcess, timeout: float = 60.0) -> dict[str, int]:
    """The archive's counts by type once it holds `expected` events (the consumer must not exit)."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {t["event_type"]: t["count"] for t in httpx.get(f"{api_url}/event-types", timeout=5).json()}
        if sum(counts.values()) >= expected:
            return counts
        if not consumer.running:
            raise RuntimeError(f"the consumer exited:\n{consumer.output()[-4000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the consumer archived {sum(counts.values())} of {expected} events in {timeout} s:\n"
                       f"{consumer.output()[-4000:]}")
