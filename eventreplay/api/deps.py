"""Dependencies of the routers: the services of the app, and the API key header (declared here,
checked by eventreplay.api.guard)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from eventreplay.api.guard import API_KEY_HEADER
from eventreplay.api.services import Services
from eventreplay.replay.engine import ReplayEngine
from eventreplay.api.broker_admin import BrokerAdmin
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


# The key itself is checked by eventreplay.api.guard, before the body is read (a dependency runs only
# after it). This declaration puts the header in the OpenAPI schema, and the "Authorize" button in
# /docs, on the endpoints that need it; it checks nothing (auto_error=False).
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, scheme_name="ApiKey",
    description="Required on the mutating endpoints when the server has REPLAY_API_KEY set.",
)
ApiKey = Security(api_key_header)
