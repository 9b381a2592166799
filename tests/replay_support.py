"""Helpers of the replay and API tests: seeding a store, reading a queue, bounded waiting."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
import pika
import pytest
from fastapi.testclient import TestClient

from tests.waiting import wait_for  # noqa: F401 - re-exported for the tests
from eventreplay.api import create_app
from eventreplay.broker import event_properties, properties_to_dict
from eventreplay.schema import routing_key_for
from eventreplay.settings import Settings
from eventreplay.store.base import EventQuery, EventStore, NewEvent

BASE_TIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def make_event(
    event_type: str = "OrderPlaced", *, at: datetime | None = None, exchange: str = "ecommerce-exchange",
    **fields: Any,
) -> NewEvent:
    event_id = str(uuid.uuid4())
    at = at or BASE_TIME
    payload = {"event_id": event_id, "event_type": event_type,
               "timestamp": at.replace(tzinfo=None).isoformat(), **fields}
    properties = properties_to_dict(
        event_properties(event_id=event_id, event_type=event_type, timestamp=at.timestamp())
    )
    return NewEvent(
        event_id=event_id, event_type=event_type, timestamp=at,
        body=json.dumps(payload, separators=(",", ":")).encode(), routing_key=routing_key_for(event_type),
        exchange=exchange, received_at=at + timedelta(milliseconds=3), properties=properties,
    )


def seed(store: EventStore, events: Iterable[NewEvent], batch: int = 500) -> list[NewEvent]:
    """Append in batches; returns the events in the store's global order (EventStoreDB groups a
    batch by stream, so that is not always the append order). The store must hold nothing else."""
    out: list[NewEvent] = []
    chunk: list[NewEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= batch:
            store.append(chunk)
            out += chunk
            chunk = []
    if chunk:
        store.append(chunk)
        out += chunk
    by_id = {event.event_id: event for event in out}
    return [by_id[stored.event_id] for stored in store.read(EventQuery()) if stored.event_id in by_id]




def declare_queue(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(queue, durable=False, auto_delete=False)
    finally:
        connection.close()


def delete_queue(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def queue_depth(amqp_url: str, queue: str) -> int | None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


@dataclass
class Received:
    routing_key: str
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}

    @property
    def event_id(self) -> str:
        return json.loads(self.body)["event_id"]


def drain(amqp_url: str, queue: str, expected: int | None = None, timeout: float = 20.0, idle: float = 0.5):
    """Every message in the queue: [Received], acked. Stops at `expected` messages, or
    after `idle` seconds with nothing new; always within `timeout`."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    messages: list[Received] = []
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if expected is not None and len(messages) >= expected:
                    break
                if expected is None and time.monotonic() - last > idle:
                    break
                connection.sleep(0.02)
                continue
            messages.append(Received(method.routing_key, properties, body))
            last = time.monotonic()
            if expected is not None and len(messages) >= expected and method.message_count == 0:
                # read on a little to see that nothing more arrives
                connection.sleep(0.1)
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                messages.append(Received(method.routing_key, properties, body))
    finally:
        connection.close()
    return messages


def consume_message_ids(amqp_url: str, queue: str, *, at_least: int, timeout: float = 120.0,
                        idle: float = 1.0) -> list[str]:
    """The message_id of every message in the queue, in arrival order (acked): at least
    `at_least` of them, then until nothing more comes for `idle` seconds. Consumes with a
    prefetch window, far faster than basic_get for large queues."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ids: list[str] = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2000)
        deadline = time.monotonic() + timeout
        for method, properties, _body in channel.consume(queue, auto_ack=True, inactivity_timeout=idle):
            if method is None:
                if len(ids) >= at_least:
                    break
            else:
                ids.append(properties.message_id)
            if time.monotonic() > deadline:
                break
        channel.cancel()
    finally:
        connection.close()
    return ids


# fixtures (import them into a test module to use them) ---------------------------------------------


def api_settings(store_url: str, amqp_url: str, **overrides) -> Settings:
    return Settings(_env_file=None, event_store_url=store_url, amqp_url=amqp_url, **overrides)


@pytest.fixture
def api(store_url, amqp_url):
    """The Replay API in process (lifespan run), on an empty store of each backend."""
    app = create_app(api_settings(store_url, amqp_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api_store(api):
    """The store the `api` fixture serves (to seed it)."""
    return api.app.state.services.store()


@pytest.fixture
def target_queue(amqp_url, names):
    queue = names["target_queue"]
    declare_queue(amqp_url, queue)
    yield queue
    delete_queue(amqp_url, queue)


def wait_job(client, job_id: str, timeout: float = 30.0) -> dict:
    def ended():
        job = client.get(f"/replays/{job_id}").json()
        return job if job["state"] not in ("pending", "running") else None
    return wait_for(ended, timeout=timeout, what=f"replay {job_id} to end")


# the API as a real process (uvicorn), for restart and schema tests ---------------------------------


ROOT = Path(__file__).resolve().parent.parent
PORTS = range(18100, 18200)  # this suite's range on shared machines


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18100-18199")


class ApiProcess:
    def __init__(self, store_url: str, amqp_url: str, log_path: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k not in ("REPLAY_API_KEY",)}
        environment.update(EVENT_STORE_URL=store_url, AMQP_URL=amqp_url, API_HOST="127.0.0.1",
                           API_PORT=str(self.port), LOG_LEVEL="INFO", **(env or {}))
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "replay_api.py"],
            cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.base, timeout=30)
        wait_for(self._up, timeout=40, what="the API to answer /health")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the API exited with {self.process.returncode}; see {self.log.name}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/replays/{job_id}").json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


