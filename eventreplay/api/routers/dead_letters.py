"""Dead letters: list the dead-letter queue's messages without taking them, redrive them to the
archive queue, or discard them (eventreplay/dead_letters; docs/api.md "Dead letters").

One DeadLetterBox per app, created on first use: it runs one operation at a time, so that two
requests never take the same messages. Plain `def` endpoints: FastAPI runs them in its thread pool."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from eventreplay.api.deps import ApiKey, ServicesDep
from eventreplay.api.models import (
    DeadLetterList, DeadLetterOut, DeadLetterSelection, DiscardResult, ReasonCount, RedriveResult, error_responses,
)
from eventreplay.dead_letters import BoxUnavailable, DeadLetterBox, Selection
from eventreplay.dead_letters.box import NoArchiveQueue

router = APIRouter(tags=["dead letters"])


def get_box(request: Request, services: ServicesDep) -> DeadLetterBox:
    box = getattr(request.app.state, "dead_letter_box", None)
    if box is None:
        settings = services.settings
        box = DeadLetterBox(settings.amqp_url, settings.dead_letter_queue, settings.archive_queue,
                            client_name="eventreplay-api-dead-letters")
        request.app.state.dead_letter_box = box
    return box


BoxDep = Annotated[DeadLetterBox, Depends(get_box)]


def _selection(body: DeadLetterSelection | None) -> Selection:
    if body is None:
        return Selection()
    return Selection(reason=body.reason, ids=frozenset(body.ids) if body.ids is not None else None)


def _unavailable(error: BoxUnavailable) -> HTTPException:
    return HTTPException(503, f"broker unavailable: {error}")


@router.get("/dead-letters", response_model=DeadLetterList, summary="List the dead letters (nothing is taken)",
            responses=error_responses(422, 503))
def list_dead_letters(
    box: BoxDep,
    reason: Annotated[str | None, Query(min_length=1, max_length=2000,
                                        description="only dead letters with exactly this reason")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="items listed at most")] = 100,
):
    """The dead-letter queue's messages, oldest first, each with its reason, time, original routing
    key and a preview; `by_reason` counts over the first 10,000 messages. Every message stays in
    the queue."""
    try:
        listing = box.browse(reason, limit)
    except BoxUnavailable as error:
        raise _unavailable(error) from None
    return DeadLetterList(
        total=listing.total,
        by_reason=[ReasonCount(reason=r, count=c) for r, c in listing.by_reason],
        items=[DeadLetterOut.of(letter) for letter in listing.items],
    )


@router.post("/dead-letters/redrive", response_model=RedriveResult, summary="Send dead letters back to be archived",
             dependencies=[ApiKey], responses=error_responses(401, 409, 413, 422, 503))
def redrive_dead_letters(box: BoxDep, body: DeadLetterSelection | None = None):
    """Each chosen dead letter (`reason` and/or `ids`; neither: all) is published with confirms to
    the archive queue alone, with its original routing key and exchange, and removed from the
    dead-letter queue once confirmed. What the consumer refuses again comes back with its reason."""
    try:
        outcome = box.redrive(_selection(body))
    except NoArchiveQueue as error:
        raise HTTPException(409, str(error)) from None
    except BoxUnavailable as error:
        raise _unavailable(error) from None
    return RedriveResult(redriven=outcome.done, remaining=outcome.remaining)


@router.post("/dead-letters/discard", response_model=DiscardResult, summary="Remove dead letters for good",
             dependencies=[ApiKey], responses=error_responses(401, 413, 422, 503))
def discard_dead_letters(box: BoxDep, body: DeadLetterSelection | None = None):
    """The chosen dead letters (`reason` and/or `ids`; neither: all) are removed from the
    dead-letter queue."""
    try:
        outcome = box.discard(_selection(body))
    except BoxUnavailable as error:
        raise _unavailable(error) from None
    return DiscardResult(discarded=outcome.done, remaining=outcome.remaining)
