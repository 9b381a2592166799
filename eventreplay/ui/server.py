"""Serving the management UI with waitress (a production WSGI server) instead of Werkzeug's
development server, which runs one thread per connection: a few thousand idle connections that
trickle header lines made it start thousands of threads and stop answering.

waitress reads requests on one event loop and runs only complete requests on a fixed pool of
`UI_THREADS` threads, so idle or slow connections cost a socket each, never a thread.
"""
from __future__ import annotations

import logging

import waitress
from flask import Flask

from eventreplay.logs import configure_logging
from eventreplay.open_files import connections_allowed
from eventreplay.settings import Settings

log = logging.getLogger(__name__)

def connection_limit(settings: Settings) -> int:
    """UI_MAX_CONNECTIONS, or fewer when the open-file limit cannot hold that many: waitress would
    otherwise keep trying to accept connections it has no file descriptor for."""
    limit = connections_allowed(settings.ui_max_connections)
    if limit < settings.ui_max_connections:
        log.warning("UI_MAX_CONNECTIONS=%d lowered to %d: the open-file limit of this process is too low",
                    settings.ui_max_connections, limit)
    return limit


def serve(app: Flask, settings: Settings) -> None:
    configure_logging(settings.log_level)
    proxy = {}
    if settings.ui_trusted_proxy:
        # only this proxy may say the page came over HTTPS (request.is_secure: Secure cookie);
        # waitress drops X-Forwarded-* headers from anyone else
        proxy = {"trusted_proxy": settings.ui_trusted_proxy, "trusted_proxy_headers": {"x-forwarded-proto"}}
    waitress.serve(
        app,
        host=settings.ui_host,
        port=settings.ui_port,
        threads=settings.ui_threads,
        connection_limit=connection_limit(settings),
        # a connection silent this long is closed; checked every cleanup_interval seconds
        channel_timeout=settings.ui_idle_timeout_s,
        cleanup_interval=min(30, settings.ui_idle_timeout_s),
        # select() cannot watch file descriptors above 1024
        asyncore_use_poll=True,
        **proxy,
    )
