"""Helpers of the ingestion tests: settings for unique names, a consumer running in a thread,
publishing, polling with a deadline, and removing the test's exchange and queues afterwards."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import quote

import httpx
import pika
import pika.exceptions

from tests.waiting import wait_for  # noqa: F401 - re-exported for the tests
from eventreplay.broker import ArchiveTopology, ConfirmedPublisher
from eventreplay.ingest import ArchiveConsumer
from eventreplay.settings import Settings
from eventreplay.simulator import OutgoingEvent, publish_events
from eventreplay.store import EventStore


def consumer_settings(amqp_url: str, store_url: str, names: dict[str, str], **overrides) -> Settings:
    return Settings(
        _env_file=None, amqp_url=amqp_url, event_store_url=store_url, exchange=names["exchange"],
        archive_queue=names["archive_queue"], dead_letter_queue=names["dead_letter_queue"], **overrides,
    )


@contextmanager
def running_consumer(settings: Settings, store: EventStore, **options) -> Iterator[ArchiveConsumer]:
    """An ArchiveConsumer in a thread, attached to its queue before the body runs; stopped (and
    checked to have stopped) afterwards."""
    consumer = ArchiveConsumer(settings, store, summary_every=3600, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            failure.append(error)

    thread = threading.Thread(target=run, name="archive-consumer", daemon=True)
    thread.start()
    wait_for(lambda: consumer.consuming.is_set() or failure, timeout=15, what="the consumer to attach")
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the consumer did not stop within 30 s"
    if failure:
        raise failure[0]


def publish(amqp_url: str, exchange: str, events: list[OutgoingEvent]) -> None:
    """Publish with confirms and `mandatory` (so a missing binding fails the test, not the count)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        report = publish_events(ConfirmedPublisher(connection), events, exchange=exchange, mandatory=True)
        assert report.confirmed == len(events)
    finally:
        connection.close()


def publish_raw(amqp_url: str, exchange: str, messages: list[tuple[str, bytes, pika.BasicProperties | None]]) -> None:
    """Plain basic_publish, as the prototype did (then a confirm round so they are surely routed)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for routing_key, body, properties in messages:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
    finally:
        connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        if connection.is_open:
            connection.close()


def drain(amqp_url: str, queue: str, expected: int, timeout: float = 20.0) -> list[tuple[Any, pika.BasicProperties, bytes]]:
    """`expected` messages from the queue (acked), or fewer if the deadline passes first."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    got = []
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                connection.sleep(0.02)
                continue
            got.append((method, properties, body))
    finally:
        connection.close()
    return got


def delete_topology(amqp_url: str, names: dict[str, str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in (names["archive_queue"], names["dead_letter_queue"], names.get("target_queue")):
            if queue:
                channel.queue_delete(queue)
        channel.exchange_delete(names["exchange"])
    except pika.exceptions.AMQPError:
        pass
    finally:
        if connection.is_open:
            connection.close()


def close_broker_connections(amqp_url: str, connection_name: str) -> int:
    """Have RabbitMQ itself close every client connection of that name (its management API), as a
    broker restart or a network cut would. Returns how many it closed."""
    params = pika.URLParameters(amqp_url)
    port = int(os.environ.get("RABBITMQ_MANAGEMENT_PORT", "15672"))
    auth = (params.credentials.username, params.credentials.password)
    with httpx.Client(base_url=f"http://{params.host}:{port}/api", auth=auth, timeout=10) as api:
        def named() -> list[str]:
            connections = api.get("/connections").raise_for_status().json()
            return [c["name"] for c in connections
                    if (c.get("client_properties") or {}).get("connection_name") == connection_name]

        names = wait_for(named, timeout=15, what=f"the broker to list connection {connection_name!r}")
        for name in names:
            api.delete(f"/connections/{quote(name, safe='')}",
                       headers={"X-Reason": "test: connection dropped by the broker"}).raise_for_status()
        return len(names)


@contextmanager
def declared_archive(amqp_url: str, names: dict[str, str]) -> Iterator[dict[str, str]]:
    """The test's archive topology declared before the body runs (so nothing published is dropped
    for want of a binding), and removed afterwards."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ArchiveTopology(names["exchange"], names["archive_queue"], names["dead_letter_queue"]).declare(connection.channel())
    connection.close()
    try:
        yield names
    finally:
        delete_topology(amqp_url, names)
