"""Connections to RabbitMQ: the parameters every component uses, connecting until it answers (the
retry policy of eventreplay/retrying.py), and closing without caring how broken the connection is.
"""
from __future__ import annotations

import logging

import pika
import pika.exceptions

from eventreplay.retrying import Interrupted, RetryPolicy, one_line

log = logging.getLogger(__name__)

# Errors that mean "the connection or channel is gone; reconnect and carry on".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


def connection_parameters(amqp_url: str, *, client_name: str, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": client_name, "product": "eventreplay"}
    return params


def connect(amqp_url: str, *, client_name: str) -> pika.BlockingConnection:
    """One attempt to open a blocking connection."""
    return pika.BlockingConnection(connection_parameters(amqp_url, client_name=client_name))


def broker_address(amqp_url: str) -> str:
    """host:port and vhost of an AMQP URL, without the credentials (for log lines)."""
    params = pika.URLParameters(amqp_url)
    return f"{params.host}:{params.port} (vhost {params.virtual_host!r})"


def connect_until_stopped(amqp_url: str, *, client_name: str, policy: RetryPolicy) -> pika.BlockingConnection | None:
    """Connect, waiting out an unreachable broker with the policy's delays; None when its stop
    request comes first. The caller tells the policy when the connection made progress."""

    def unreachable(error: BaseException, delay: float) -> None:
        log.warning("RabbitMQ at %s is not reachable (%s); retrying in %.1f s",
                    broker_address(amqp_url), one_line(error), delay)

    try:
        for attempt in policy.retrying(CONNECTION_ERRORS, on_fault=unreachable):
            with attempt:
                if policy.interrupted:
                    return None
                return connect(amqp_url, client_name=client_name)
    except Interrupted:
        return None
    raise AssertionError("unreachable")


def close_quietly(connection: pika.BlockingConnection | None) -> None:
    """Close a connection that may already be broken in any way."""
    try:
        if connection is not None and connection.is_open:
            connection.close()
    except Exception:  # noqa: BLE001 - a broken connection fails to close in many ways
        pass
