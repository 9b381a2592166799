"""The API's own broker connection, for checks: readiness, replay targets, the ready-made replay
queue. pika connections are not thread-safe, so calls are serialised; a connection the broker
dropped while idle (missed heartbeats) is replaced once, transparently."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import pika
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from eventreplay.broker import (
    CONNECTION_ERRORS, DEFAULT_QUEUE_TYPE, QueueStats, close_quietly, connect, declare_queue, queue_stats,
)
from eventreplay.replay.spec import ReplaySpec
from eventreplay.replay.targets import ensure_target

T = TypeVar("T")


class BrokerAdmin:
    def __init__(self, amqp_url: str, *, client_name: str = "eventreplay-api", queue_type: str = DEFAULT_QUEUE_TYPE):
        self.amqp_url = amqp_url
        self.queue_type = queue_type  # of the queues it declares (QUEUE_TYPE)
        self.client_name = client_name
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None

    def _run(self, action: Callable[[pika.BlockingConnection], T]) -> T:
        with self._lock:
            # a second attempt on a fresh connection, at once: the first may have met a connection
            # the broker dropped while it sat idle
            for attempt in Retrying(retry=retry_if_exception_type(CONNECTION_ERRORS), stop=stop_after_attempt(2),
                                    before_sleep=lambda _state: self._drop(), reraise=True):
                with attempt:
                    if self._connection is None or not self._connection.is_open:
                        self._connection = connect(self.amqp_url, client_name=self.client_name)
                    return action(self._connection)
            raise AssertionError("unreachable")

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        close_quietly(connection)

    def ping(self) -> None:
        """Raise (a CONNECTION_ERRORS member) if the broker cannot be reached."""
        self._run(lambda connection: connection.process_data_events(time_limit=0))

    def ensure_target(self, spec: ReplaySpec) -> None:
        self._run(lambda connection: ensure_target(connection, spec, queue_type=self.queue_type))

    def declare_queue(self, name: str) -> str:
        """A durable queue of QUEUE_TYPE (one of the other type is kept, with a warning); its type."""
        return self._run(lambda connection: declare_queue(connection, name, self.queue_type))

    def queue_stats(self, name: str) -> QueueStats | None:
        """Depth and consumer count of a queue (a passive declare, on a throwaway channel); None when
        the queue does not exist. Broker errors propagate (CONNECTION_ERRORS)."""
        return self._run(lambda connection: queue_stats(connection, name))

    def close(self) -> None:
        with self._lock:
            self._drop()
