"""The app factory: `create_app(settings)` wires the routers, the error handlers and the services
(opened at startup, closed at shutdown)."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from eventreplay.api import errors
from eventreplay.api.guard import RequestGuard
from eventreplay.api.routers import dead_letters, events, ingest, ops, replays
from eventreplay.api.services import Services
from eventreplay.logs import configure_logging
from eventreplay.settings import Settings, get_settings

DESCRIPTION = """
Replays archived RabbitMQ events: filtered (types, time window, payload fields), paced (rate or
original speed), with publisher confirms, as jobs you can watch, cancel and resume. Also browses the
archive. Errors are JSON `{"detail": "..."}`. When the server has `REPLAY_API_KEY` set, the POST
endpoints need it in the `X-API-Key` header.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not logging.getLogger().handlers:  # under uvicorn; a test runner keeps its own handlers
        configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services(settings)
        app.state.services = services
        await run_in_threadpool(services.open)
        try:
            yield
        finally:
            await run_in_threadpool(services.close)

    # FastAPIOffline serves /docs and /redoc from vendored files instead of a CDN: the docs must work
    # on a machine without internet access, like the rest of the system.
    app = FastAPIOffline(
        title="eventreplay Replay API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    # before routing and body parsing: size limit and API key (eventreplay/api/guard.py)
    app.add_middleware(RequestGuard, max_body_bytes=settings.api_max_body_bytes, api_key=settings.replay_api_key)
    app.include_router(replays.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(dead_letters.router)
    app.include_router(ingest.router)
    return app
