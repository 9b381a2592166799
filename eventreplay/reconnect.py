"""Staying connected: exponential backoff that a stop request interrupts, connecting to RabbitMQ
until it answers, and describing connection failures in one readable line.

The simulator and the consumer both wait for the broker (and the consumer for the store) with
these; a SIGTERM during a wait ends it at once instead of after the whole delay. (broker.connect's
tenacity retry cannot be interrupted that way.)
"""
from __future__ import annotations

import logging
import threading

import pika

from eventreplay.broker import CONNECTION_ERRORS, connect

log = logging.getLogger(__name__)


class Backoff:
    """Delays that grow from `first` to `longest`. Reset it only after progress (work done through
    the connection), never merely because a connect succeeded: a connection that opens and then
    fails at once, over and over (the store's disk is full, say), must not retry at full rate."""

    def __init__(self, first: float = 0.5, longest: float = 10.0, factor: float = 2.0):
        self.first, self.longest, self.factor = first, longest, factor
        self.delay = first

    def next_delay(self) -> float:
        """The delay to wait now; the following one grows."""
        delay = self.delay
        self.delay = min(self.delay * self.factor, self.longest)
        return delay

    def reset(self) -> None:
        self.delay = self.first


def broker_address(amqp_url: str) -> str:
    """host:port and vhost of an AMQP URL, without the credentials (for log lines)."""
    params = pika.URLParameters(amqp_url)
    return f"{params.host}:{params.port} (vhost {params.virtual_host!r})"


def describe_error(error: BaseException) -> str:
    """One line for a log: pika wraps the cause (AMQPConnectionError(AMQPConnectorSocketConnectError(
    ConnectionRefusedError))) and often has an empty message at the top."""
    while not str(error).strip() and error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    inner = getattr(error, "exception", None)  # pika's connector errors keep the socket error here
    if isinstance(inner, OSError):
        text = inner.strerror or str(inner)
    elif isinstance(inner, BaseException):
        text = str(inner)
    else:
        text = str(error).strip() or repr(error)
    return text.splitlines()[0][:300] if text else type(error).__name__


def connect_until_stopped(
    amqp_url: str, *, client_name: str, stop: threading.Event, backoff: Backoff | None = None
) -> pika.BlockingConnection | None:
    """Connect, retrying with backoff while the broker is unreachable; None if stopped meanwhile.
    A caller's `backoff` keeps growing across calls: the caller resets it once it made progress."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            connection = connect(amqp_url, client_name=client_name)
        except CONNECTION_ERRORS as error:
            delay = backoff.next_delay()
            log.warning(
                "RabbitMQ at %s is not reachable (%s); retrying in %.1f s",
                broker_address(amqp_url), describe_error(error), delay,
            )
            if stop.wait(delay):
                return None
        else:
            return connection
    return None


def close_quietly(connection: pika.BlockingConnection | None) -> None:
    try:
        if connection is not None and connection.is_open:
            connection.close()
    except CONNECTION_ERRORS:
        pass
