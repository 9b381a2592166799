"""Where a replay publishes to, checked on the broker before anything is sent.

A passive declare on a throwaway channel tells whether a queue or exchange exists: RabbitMQ answers a
missing one by closing that channel with 404, which leaves the connection usable.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

import pika
import pika.exceptions

from eventreplay.broker import CONNECTION_ERRORS, connect
from eventreplay.replay.spec import ReplaySpec

log = logging.getLogger(__name__)
T = TypeVar("T")


class TargetNotFound(Exception):
    """The target queue or exchange does not exist (HTTP 404)."""


class TargetRefused(Exception):
    """The broker refuses the target (exclusive queue of another connection, access refused...)."""


def _passive_check(connection: pika.BlockingConnection, declare: Callable, what: str) -> bool:
    channel = connection.channel()
    try:
        declare(channel)
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code == 404:
            return False
        raise TargetRefused(f"the broker refuses {what}: {closed.reply_text}") from None
    channel.close()
    return True


def ensure_target(connection: pika.BlockingConnection, spec: ReplaySpec) -> None:
    """Raise TargetNotFound / TargetRefused unless the spec's target can receive messages; with
    `create_queue`, declare a missing target queue (durable)."""
    if spec.target_queue is not None:
        queue = spec.target_queue
        if _passive_check(connection, lambda ch: ch.queue_declare(queue, passive=True), f"queue {queue!r}"):
            return
        if not spec.create_queue:
            raise TargetNotFound(
                f"queue {queue!r} does not exist; create it first or send \"create_queue\": true"
            )
        channel = connection.channel()
        try:
            channel.queue_declare(queue, durable=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            raise TargetRefused(f"cannot declare queue {queue!r}: {closed.reply_text}") from None
        channel.close()
        log.info("declared the replay target queue %r", queue)
    elif spec.target_exchange is not None:
        exchange = spec.target_exchange
        if not _passive_check(
            connection, lambda ch: ch.exchange_declare(exchange, passive=True), f"exchange {exchange!r}"
        ):
            raise TargetNotFound(f"exchange {exchange!r} does not exist")


class BrokerAdmin:
    """The API's own broker connection for checks (ready, targets). pika connections are not
    thread-safe, so calls are serialised; a connection the broker dropped while idle (missed
    heartbeats) is replaced once, transparently."""

    def __init__(self, amqp_url: str, *, client_name: str = "eventreplay-api"):
        self.amqp_url = amqp_url
        self.client_name = client_name
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None

    def _run(self, action: Callable[[pika.BlockingConnection], T]) -> T:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._connection is None or not self._connection.is_open:
                        self._connection = connect(self.amqp_url, client_name=self.client_name)
                    return action(self._connection)
                except CONNECTION_ERRORS:
                    self._drop()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail in many ways
                pass

    def ping(self) -> None:
        """Raise (a CONNECTION_ERRORS member) if the broker cannot be reached."""
        self._run(lambda connection: connection.process_data_events(time_limit=0))

    def ensure_target(self, spec: ReplaySpec) -> None:
        self._run(lambda connection: ensure_target(connection, spec))

    def declare_queue(self, name: str) -> None:
        def declare(connection: pika.BlockingConnection) -> None:
            channel = connection.channel()
            try:
                channel.queue_declare(name, durable=True)
            finally:
                if channel.is_open:
                    channel.close()

        self._run(declare)

    def close(self) -> None:
        with self._lock:
            self._drop()
