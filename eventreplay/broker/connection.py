"""Connections to RabbitMQ: the parameters every component uses, connecting until it answers (the
retry policy of eventreplay/retrying.py), and closing without caring how broken the connection is.

AMQP_URL names one node, or several separated by commas (the nodes of a cluster):
`amqp://u:p@host1:5672/%2F,amqp://u:p@host2:5672/%2F`. Every connect tries them in that order (pika's
list of parameters) and takes the first that accepts, so a reconnect after a node is lost lands on a
node that is up. A comma inside a URL (a password) must be percent-encoded: %2C.
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


AMQP_SCHEMES = ("amqp", "amqps")


def amqp_urls(amqp_url: str) -> list[str]:
    """The node URLs of AMQP_URL, in the order they are tried; ValueError (one readable line) when
    one of them is not an amqp:// or amqps:// URL."""
    urls = [part.strip() for part in amqp_url.split(",")]
    if not any(urls):
        raise ValueError("empty: expected amqp://USER:PASSWORD@HOST:PORT/VHOST")
    for number, url in enumerate(urls, 1):
        where = f"node {number} of {len(urls)}" if len(urls) > 1 else "the URL"
        if not url:
            raise ValueError(f"{where} is empty (several nodes are separated by single commas)")
        scheme, sep, _rest = url.partition("://")
        if not sep or scheme.lower() not in AMQP_SCHEMES:
            raise ValueError(f"{where} ({_without_password(url)!r}) is not an amqp:// or amqps:// URL "
                             "(several nodes: separated by commas; a comma in a password is written %2C)")
        try:
            pika.URLParameters(url)
        except Exception as error:  # noqa: BLE001 - pika raises several kinds for a bad URL
            hint = " (a comma in a password is written %2C)" if len(urls) > 1 else ""
            raise ValueError(f"{where} ({_without_password(url)!r}): {error}{hint}") from None
    return urls


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{tail}"


def connection_parameters(amqp_url: str, *, client_name: str, heartbeat: int = 30) -> list[pika.URLParameters]:
    """pika's parameters for each node of AMQP_URL, in order: one attempt each, a 5 s TCP timeout."""
    nodes = []
    for url in amqp_urls(amqp_url):
        params = pika.URLParameters(url)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        params.retry_delay = 0
        params.socket_timeout = 5
        params.client_properties = {"connection_name": client_name, "product": "eventreplay"}
        nodes.append(params)
    return nodes


def connect(amqp_url: str, *, client_name: str) -> pika.BlockingConnection:
    """One attempt to open a blocking connection: each node of AMQP_URL in turn, the first that
    accepts (the error of the last one when none does)."""
    return pika.BlockingConnection(connection_parameters(amqp_url, client_name=client_name))


def broker_address(amqp_url: str) -> str:
    """host:port of each node and the vhost of AMQP_URL, without the credentials (for log lines)."""
    nodes = [pika.URLParameters(url) for url in amqp_urls(amqp_url)]
    hosts = ", ".join(f"{params.host}:{params.port}" for params in nodes)
    return f"{hosts} (vhost {nodes[0].virtual_host!r})"


def connected_node(connection: pika.BlockingConnection) -> str:
    """host:port of the node a connection went to (for log lines)."""
    params = getattr(getattr(connection, "_impl", None), "params", None)
    return f"{params.host}:{params.port}" if params is not None else "?"


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
