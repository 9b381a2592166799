"""Replay jobs: start, list, watch, cancel, resume.

Endpoints are plain `def`: FastAPI runs them in its thread pool, so broker checks, store reads and
`?wait=true` never block the event loop; the replays themselves run in the engine's threads."""
from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from eventreplay.api.deps import ApiKey, BrokerDep, EngineDep, StoreDep
from eventreplay.api.models import (
    REPLAY_REQUEST_EXAMPLES, DryRunResult, EventOut, ReplayJobOut, ReplayRequest, error_responses,
)
from eventreplay.replay.jobs import JobNotFound
from eventreplay.schema import canonical_uuid
from eventreplay.replay.jobs import JobState
from eventreplay.replay.spec import ReplaySpec

router = APIRouter(tags=["replays"])

DRY_RUN_SAMPLES = 5
JobId = Annotated[str, Path(description="The job's id (a UUID).", examples=["0b7c6a57-5f43-4f0e-9a4c-3f8e2f3c1d2e"])]


def _checked_id(job_id: str) -> str:
    try:
        return canonical_uuid(job_id, what="job id")
    except ValueError:
        raise JobNotFound(f"no replay job {job_id!r}") from None


@router.post(
    "/replay",
    status_code=202,
    response_model=ReplayJobOut,
    summary="Start a replay",
    dependencies=[ApiKey],
    responses={
        200: {"model": DryRunResult, "description": "Dry run: count and samples, nothing published"},
        **error_responses(401, 404, 409, 413, 422, 503),
    },
)
def start_replay(
    request: Annotated[ReplayRequest, Body(openapi_examples=REPLAY_REQUEST_EXAMPLES)],
    response: Response,
    engine: EngineDep,
    store: StoreDep,
    broker: BrokerDep,
    wait: Annotated[bool, Query(description="Answer when the job has ended.")] = False,
):
    """Replay the matching events, in store order, to a queue or an exchange. Answers 202 with
    the job and `Location: /replays/{id}`; `?wait=true` answers when it has ended. A missing target
    queue is a 404 unless `create_queue` is set."""
    spec = ReplaySpec.model_validate(request.model_dump())
    if spec.dry_run:
        matched, samples = _count_and_sample(store, spec)
        result = DryRunResult(matched=matched, samples=[EventOut.of(e) for e in samples])
        return JSONResponse(result.model_dump(mode="json"), status_code=200)
    broker.ensure_target(spec)
    job = engine.submit(spec)
    if wait:
        job = engine.wait(job.id)
    response.headers["Location"] = f"/replays/{job.id}"
    return ReplayJobOut.of(job)


def _count_and_sample(store, spec: ReplaySpec) -> tuple[int, list]:
    """How many events match, and the first few: from the index when it serves the query, else in
    one read (never reading them all twice)."""
    query = spec.query()
    if not store.reads_everything(query):
        return store.count(query), list(islice(store.read(spec.query(limit=DRY_RUN_SAMPLES)), DRY_RUN_SAMPLES))
    samples, matched = [], 0
    for event in store.read(query):
        matched += 1
        if len(samples) < DRY_RUN_SAMPLES:
            samples.append(event)
    return matched, samples


@router.get("/replays", response_model=list[ReplayJobOut], summary="List replay jobs, newest first",
            responses=error_responses(422, 503))
def list_replays(
    engine: EngineDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs.")] = 100,
):
    return [ReplayJobOut.of(job) for job in engine.list(state=state, limit=limit)]


@router.get("/replays/{job_id}", response_model=ReplayJobOut, summary="One replay job",
            responses=error_responses(404, 503))
def get_replay(job_id: JobId, engine: EngineDep):
    return ReplayJobOut.of(engine.get(_checked_id(job_id)))


@router.post("/replays/{job_id}/cancel", response_model=ReplayJobOut, summary="Cancel a replay job",
             dependencies=[ApiKey], responses=error_responses(401, 404, 409, 503))
def cancel_replay(job_id: JobId, engine: EngineDep):
    """Stops publishing (checked before every event), waits for the broker's confirms of what is
    in flight, and answers the job with its final counts. Any API instance can take it: a job run by
    another instance gets `cancel_requested`, its owner ends it at its next heartbeat (within
    JOB_LEASE_S / 5) and this answers once it has (after 15 s at most: then still running, with
    `cancel_requested`). 409 when the job has already ended."""
    return ReplayJobOut.of(engine.cancel(_checked_id(job_id)))


@router.post("/replays/{job_id}/resume", response_model=ReplayJobOut, status_code=202,
             summary="Resume an interrupted, failed or cancelled replay job",
             dependencies=[ApiKey], responses=error_responses(401, 404, 409, 503))
def resume_replay(job_id: JobId, response: Response, engine: EngineDep, broker: BrokerDep):
    """Continues after the last confirmed event: no confirmed event is published again. Any API
    instance can take it, and then runs the job. A job still `running` whose instance stopped
    renewing its lease (no heartbeat for JOB_LEASE_S) is taken over at once; one with a live owner
    is a 409."""
    job = engine.get(_checked_id(job_id))
    if job.state.resumable:
        broker.ensure_target(job.request)
    job = engine.resume(job.id)
    response.headers["Location"] = f"/replays/{job.id}"
    return ReplayJobOut.of(job)
