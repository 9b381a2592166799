"""Shared fixtures: the real broker, the real stores, unique names so tests run in any order.

AMQP_URL names the broker to test against (default: the local node `task start_services` runs).
ESDB_URL names an EventStoreDB (CI starts the emulator); without it EventStoreDB tests skip.
Each EventStoreDB test gets its own stream prefix (`streamPrefix` in the store URL), so tests that
share one server never see each other's events.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pytest

from eventreplay.store import EventStore, open_store

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"
BACKENDS = ("sqlite", "esdb")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception as error:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(f"RabbitMQ is not reachable at {url} ({error!r}); run `task start_services` first", False)
    return url


@pytest.fixture
def amqp(amqp_url):
    """A blocking connection to the test broker, closed after the test."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture(scope="session")
def esdb_base_url() -> str:
    url = os.environ.get("ESDB_URL")
    if not url:
        pytest.skip("ESDB_URL is not set: no EventStoreDB to test against (CI starts the emulator)")
    return url


def with_stream_prefix(esdb_url: str, prefix: str) -> str:
    parts = urlsplit(esdb_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("streamPrefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def store_url_for(backend: str, tmp_path: Path, request) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return with_stream_prefix(request.getfixturevalue("esdb_base_url"), unique("t") + "-")


@pytest.fixture(params=[pytest.param(b, marks=[pytest.mark.esdb] if b == "esdb" else []) for b in BACKENDS])
def store_url(request, tmp_path) -> str:
    """An empty store of each backend, as an EVENT_STORE_URL (for subprocesses and settings)."""
    return store_url_for(request.param, tmp_path, request)


@pytest.fixture
def store(store_url) -> EventStore:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def names():
    """Unique exchange and queue names for one test."""
    tag = unique("t")
    return {
        "exchange": f"{tag}-exchange",
        "archive_queue": f"{tag}-archive",
        "dead_letter_queue": f"{tag}-archive.dead-letter",
        "target_queue": f"{tag}-target",
    }


@pytest.fixture(scope="session")
def _private_broker_node(tmp_path_factory):
    from tests.brokers import PrivateBroker

    broker = PrivateBroker(tmp_path_factory.mktemp("private-rabbitmq")).start()
    yield broker
    broker.stop()


@pytest.fixture
def private_broker(_private_broker_node):
    """A RabbitMQ node of the test session's own (tests/brokers.py), for tests that stop and start
    their broker for real; running again after each test, whatever the test did to it."""
    yield _private_broker_node
    if not _private_broker_node.accepts_connections():
        _private_broker_node.start_app()
