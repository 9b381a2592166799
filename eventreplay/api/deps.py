"""Dependencies of the routers: the services of the app, and the API key check."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from eventreplay.api.services import Services
from eventreplay.replay.engine import ReplayEngine
from eventreplay.replay.targets import BrokerAdmin
from eventreplay.store import EventStore


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_engine(services: ServicesDep) -> ReplayEngine:
    return services.engine()


def get_store(services: ServicesDep) -> EventStore:
    return services.store()


def get_broker(services: ServicesDep) -> BrokerAdmin:
    return services.broker


EngineDep = Annotated[ReplayEngine, Depends(get_engine)]
StoreDep = Annotated[EventStore, Depends(get_store)]
BrokerDep = Annotated[BrokerAdmin, Depends(get_broker)]


def require_api_key(
    services: ServicesDep,
    x_api_key: Annotated[
        str | None, Header(description="Required when the server has REPLAY_API_KEY set.")
    ] = None,
) -> None:
    expected = services.settings.replay_api_key
    if expected is None:
        return
    if x_api_key is None or not secrets.compare_digest(
        x_api_key.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise HTTPException(401, "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


ApiKey = Depends(require_api_key)
