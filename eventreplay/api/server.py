"""Serving the Replay API: uvicorn, with the connection limits of the settings (docs/api.md, "Limits").

uvicorn has a keep-alive timeout and a concurrency limit, but no limit on the time a client may take
to send its request head: a connection that trickles a header line now and then would stay open for
ever. `HeaderTimeoutH11Protocol` adds that timeout to uvicorn's h11 protocol.
"""
from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from eventreplay.open_files import connections_allowed
from eventreplay.settings import Settings

log = logging.getLogger(__name__)


class HeaderTimeoutH11Protocol(H11Protocol):
    """Closes a connection that has not delivered a complete request head `header_timeout_s` after
    it was opened or after its previous response. A head has arrived when uvicorn has started a new
    request cycle; the timer only compares cycles, so it never interrupts a request being served."""

    header_timeout_s: float = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request_head(after=None)

    def on_response_complete(self) -> None:
        finished = self.cycle  # captured first: the call below may start a pipelined request's cycle
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request_head(after=finished)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _await_request_head(self, after: RequestResponseCycle | None) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out, after)

    def _header_timed_out(self, after: RequestResponseCycle | None) -> None:
        self._header_timer = None
        if self.cycle is after and not self.transport.is_closing():
            self.logger.debug("closing a connection that sent no complete request head in %s s", self.header_timeout_s)
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


def protocol_with_header_timeout(seconds: float) -> type[H11Protocol]:
    """uvicorn creates the protocol itself (`http=` takes a class): the timeout travels as a class
    attribute."""
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": seconds})


def serve(app: FastAPI, settings: Settings) -> None:
    max_connections = connections_allowed(settings.api_max_connections)
    if max_connections < settings.api_max_connections:
        log.warning("API_MAX_CONNECTIONS=%d lowered to %d: the open-file limit of this process is too low",
                    settings.api_max_connections, max_connections)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        http=protocol_with_header_timeout(settings.api_header_timeout_s),
        timeout_keep_alive=settings.api_keep_alive_s,
        # beyond this many open connections, a request is answered 503 at once
        limit_concurrency=max_connections,
    )
