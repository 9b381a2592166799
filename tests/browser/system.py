"""The real system the UI tests run against: a seeded store, the Replay API (uvicorn subprocess)
and, for the browser, the UI itself (`python replay_management_ui.py` subprocess).

Nothing is mocked: the UI reaches the API over HTTP, the API reads the store and publishes to the
test broker. Ports come from 18500-18599 (the range reserved for the UI's tests on shared machines).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from eventreplay.simulator import EventFactory, SimulationPlan, simulate
from eventreplay.store import open_store
from tests.builders import new_event

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(18500, 18600)

# What the tests' store holds: enough types for a chart, enough events for paging, and one type
# large enough that a rate-limited replay of it runs long enough to be cancelled from the page.
SEED = {
    "OrderPlaced": 120,
    "PaymentProcessed": 60,
    "UserRegistered": 35,
    "ProductViewed": 1500,
    "OrderShipped": 12,
}


def free_port() -> int:
    """A port of our range nobody listens on now (bind test; SO_REUSEADDR like the servers)."""
    for port in PORTS:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18500-18599")


def seed_store(store_url: str, counts: dict[str, int] = SEED, *, extra=()) -> dict[str, int]:
    """Fill the store as the consumer would: bodies as the prototype sent them, in time order,
    spread over the last hour so time windows have something to cut."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    events = []
    for type_index, (event_type, count) in enumerate(counts.items()):
        for i in range(count):
            moment = start + timedelta(seconds=(i * 3600 / max(count, 1)) + type_index * 0.001)
            events.append(new_event(event_type, timestamp=moment, payload_extra={"n": i, "order_id": f"ORD-{i:05d}"}))
    events.sort(key=lambda e: e.timestamp)
    events += list(extra)
    with open_store(store_url) as store:
        for chunk in range(0, len(events), 500):
            store.append(events[chunk:chunk + 500])
    return dict(counts)


@dataclass
class Server:
    """A subprocess that serves HTTP on 127.0.0.1:port, with its output kept in a log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready_path: str = "/"
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> "Server":
        """Start the process without waiting for it (for a process that serves no HTTP)."""
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    def start(self, timeout: float = 30.0) -> "Server":
        """Start the process and wait until it answers HTTP on its port."""
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.15)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if getattr(self, "_log", None):
            self._log.close()


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_STORE", "REPLAY_API", "UI_", "API_"))}
    env.update(PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    env.update(overrides)
    return env


def start_api(store_url: str, amqp_url: str, api_key: str, log_dir: Path) -> Server:
    port = free_port()
    env = base_env(EVENT_STORE_URL=store_url, AMQP_URL=amqp_url, REPLAY_API_KEY=api_key,
                   API_HOST="127.0.0.1", API_PORT=str(port))
    command = [sys.executable, "-m", "uvicorn", "replay_api:app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
    return Server("Replay API", command, env, port, log_dir / "replay-api.log", ready_path="/health").start()


def start_ui(api_url: str, api_key: str, log_dir: Path) -> Server:
    port = free_port()
    # UI_HOST is left unset on purpose: the UI must bind 127.0.0.1 by default
    env = base_env(REPLAY_API_URL=api_url, REPLAY_API_KEY=api_key, UI_PORT=str(port),
                   UI_SECRET_KEY="browser-test-secret")
    command = [sys.executable, "replay_management_ui.py"]
    return Server("management UI", command, env, port, log_dir / "management-ui.log", ready_path="/static/favicon.svg").start()


def wait_for_job(api_url: str, api_key: str, job_id: str, states=("completed", "failed", "cancelled", "interrupted"),
                 timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{api_url}/replays/{job_id}", headers={"X-API-Key": api_key}, timeout=5).json()
        if job.get("state") in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states} within {timeout} s: {job}")


def publish_simulated(amqp_url: str, exchange: str, count: int, *, seed: int, types=None) -> None:
    """Events from the simulator library, published to the archived exchange with confirms."""
    report = simulate(amqp_url, EventFactory(seed=seed, types=types), SimulationPlan(
        exchange=exchange, rate=0, count=count, mandatory=True, client_name="ui-browser-tests"),
        stop=threading.Event())
    assert report.confirmed == count
