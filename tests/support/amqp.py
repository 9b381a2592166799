"""The tests' side of RabbitMQ: declaring and removing queues and a test's archive topology,
publishing, reading what arrived, and having the broker drop a client's connection.

Each helper opens a short-lived connection of its own: an idle BlockingConnection kept across a test
sends no heartbeats, and the broker may drop it before the test is done with it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator, NamedTuple
from urllib.parse import quote

import httpx
import pika
import pika.exceptions

from eventreplay.broker import ArchiveTopology, ConfirmedPublisher
from eventreplay.simulator import EventFactory, OutgoingEvent, SimulationPlan, publish_events, simulate
from tests.support.waiting import wait_for


@contextmanager
def broker_connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    """A connection of its own to the broker (AMQP_URL may name several nodes: the first that
    accepts), closed afterwards."""
    connection = pika.BlockingConnection([pika.URLParameters(url) for url in amqp_url.split(",")])
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


# -- queues ----------------------------------------------------------------------------------------

def declare_queue(amqp_url: str, queue: str) -> None:
    with broker_connection(amqp_url) as connection:
        connection.channel().queue_declare(queue, durable=False, auto_delete=False)


def delete_queue(amqp_url: str, queue: str) -> None:
    with broker_connection(amqp_url) as connection:
        connection.channel().queue_delete(queue)


def queue_depth(amqp_url: str, queue: str) -> int:
    """The messages ready in the queue (the queue must exist: see queue_exists)."""
    with broker_connection(amqp_url) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def queue_consumers(amqp_url: str, queue: str) -> int:
    """How many consumers the queue has (the queue must exist)."""
    with broker_connection(amqp_url) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count


def queue_exists(amqp_url: str, queue: str) -> bool:
    with broker_connection(amqp_url) as connection:
        try:
            connection.channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        return True


# -- a test's archive topology ---------------------------------------------------------------------

def delete_topology(amqp_url: str, names: dict[str, str]) -> None:
    """Remove the test's exchange and queues (see names.archive_names), whatever exists of them."""
    with broker_connection(amqp_url) as connection:
        try:
            channel = connection.channel()
            for queue in (names["archive_queue"], names["dead_letter_queue"], names.get("target_queue")):
                if queue:
                    channel.queue_delete(queue)
            channel.exchange_delete(names["exchange"])
        except pika.exceptions.AMQPError:
            pass


@contextmanager
def declared_archive(amqp_url: str, names: dict[str, str]) -> Iterator[dict[str, str]]:
    """The test's archive topology declared before the body runs (so nothing published is dropped
    for want of a binding), and removed afterwards."""
    with broker_connection(amqp_url) as connection:
        ArchiveTopology(names["exchange"], names["archive_queue"], names["dead_letter_queue"]).declare(
            connection.channel())
    try:
        yield names
    finally:
        delete_topology(amqp_url, names)


# -- publishing ------------------------------------------------------------------------------------

def publish(amqp_url: str, exchange: str, events: list[OutgoingEvent]) -> None:
    """Publish with confirms and `mandatory` (so a missing binding fails the test, not the count)."""
    with broker_connection(amqp_url) as connection:
        report = publish_events(ConfirmedPublisher(connection), events, exchange=exchange, mandatory=True)
    assert report.confirmed == len(events)


def publish_raw(amqp_url: str, exchange: str, messages: list[tuple[str, bytes, pika.BasicProperties | None]]) -> None:
    """Plain basic_publish, as the prototype did (then a confirm round so they are surely routed)."""
    with broker_connection(amqp_url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for routing_key, body, properties in messages:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)


def publish_simulated(amqp_url: str, exchange: str, count: int, *, seed: int, types=None) -> None:
    """`count` events of the simulator library (the whole `simulate` run, as event_simulator.py does
    it), published to the exchange with confirms."""
    report = simulate(amqp_url, EventFactory(seed=seed, types=types), SimulationPlan(
        exchange=exchange, rate=0, count=count, mandatory=True, client_name="ui-browser-tests"),
        stop=threading.Event())
    assert report.confirmed == count


# -- reading what arrived --------------------------------------------------------------------------

class Received(NamedTuple):
    """A message taken from a queue; unpacks as (routing_key, properties, body)."""

    routing_key: str
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}

    @property
    def event_id(self) -> str:
        return json.loads(self.body)["event_id"]


def drain(amqp_url: str, queue: str, expected: int | None = None, timeout: float = 20.0,
          idle: float = 0.5) -> list[Received]:
    """Every message in the queue, acked. Stops at `expected` messages once the queue is empty (and
    stays so for a moment), or, without `expected`, after `idle` seconds with nothing new; always
    within `timeout`."""
    messages: list[Received] = []
    with broker_connection(amqp_url) as connection:
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
    return messages


def consume_message_ids(amqp_url: str, queue: str, *, at_least: int, timeout: float = 120.0,
                        idle: float = 1.0) -> list[str]:
    """The message_id of every message in the queue, in arrival order (acked): at least
    `at_least` of them, then until nothing more comes for `idle` seconds. Consumes with a
    prefetch window, far faster than basic_get for large queues."""
    ids: list[str] = []
    with broker_connection(amqp_url) as connection:
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
    return ids


# -- faults ----------------------------------------------------------------------------------------

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
