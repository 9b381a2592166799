"""Operations: liveness, readiness, metrics (the replays' and, read at each scrape, the archive queues')."""
from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from eventreplay.api.deps import ServicesDep
from eventreplay.api.errors import BROKER_ERRORS
from eventreplay.api.metrics import CONTENT_TYPE_LATEST, read_broker_queues
from eventreplay.api.models import Health, Readiness
from eventreplay.store import PersistenceError

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="The process is up")
def health():
    return Health()


@router.get("/ready", response_model=Readiness, summary="The store and the broker are reachable",
            responses={503: {"model": Readiness, "description": "The reason in each failing field"}})
def ready(services: ServicesDep):
    store = broker = "ok"
    try:
        opened = services.store()
        opened.ping()
        # a full disk still serves reads; one statvfs call says so cheaply (no probe write here)
        opened.check_free_space()
    except PersistenceError as error:
        store = f"unavailable: {error}"
    try:
        services.broker.ping()
    except BROKER_ERRORS + (OSError,) as error:
        broker = f"unreachable: {error.__class__.__name__} {error}".strip()
    body = Readiness(store=store, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if store == broker == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(services: ServicesDep):
    try:
        engine = services.engine()
        list_jobs = engine.list
    except PersistenceError:
        list_jobs = None
    settings = services.settings
    queues = read_broker_queues(services.broker, settings.archive_queue, settings.dead_letter_queue)
    try:
        text = services.metrics.render(list_jobs, queues)
    except PersistenceError:
        text = services.metrics.render(None, queues)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
