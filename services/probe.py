"""Is a broker there? One AMQP connection attempt, classified."""

from __future__ import annotations

import socket

UP, REFUSED, DOWN = "up", "refused", "down"


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def amqp(url: str, timeout: float = 3.0) -> tuple[str, str]:
    """(UP | REFUSED | DOWN, detail). REFUSED: a broker answered AMQP but refused the login or vhost."""
    try:
        import pika
        from pika import exceptions as pe
    except ImportError:  # pragma: no cover - pika is a locked dependency
        from urllib.parse import urlsplit

        p = urlsplit(url)
        ok = tcp_open(p.hostname or "localhost", p.port or 5672, timeout)
        return (UP if ok else DOWN), "tcp only (pika not installed)"
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout * 2
    params.blocked_connection_timeout = timeout
    try:
        conn = pika.BlockingConnection(params)
    except (pe.ProbableAuthenticationError, pe.AuthenticationError, pe.ProbableAccessDeniedError,
            pe.ConnectionClosedByBroker) as exc:
        return REFUSED, str(exc)[:300]
    except Exception as exc:  # noqa: BLE001 - anything else means nothing usable answers
        cause = exc.args[0] if exc.args else exc
        return DOWN, (repr(cause) if isinstance(cause, BaseException) else f"{type(exc).__name__}: {exc}")[:300]
    version = conn._impl.server_properties.get("version", b"")  # noqa: SLF001
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    return UP, f"RabbitMQ {version}" if version else "AMQP broker"
