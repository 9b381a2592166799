"""Browsing the archive: event types with counts, events page by page, one event."""
from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from eventreplay.api.deps import ServicesDep, StoreDep
from eventreplay.api.models import ArchiveOut, EventOut, EventPage, EventTypeCount, IndexedFieldOut, error_responses
from eventreplay.retention import RetentionPolicy
from eventreplay.schema import as_utc, canonical_uuid
from eventreplay.store.query import EventQuery, check_window, parse_match

router = APIRouter(tags=["events"])

MAX_POSITION = 2**63 - 1


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


def _match(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        return parse_match(text) or None
    except ValueError as error:
        raise _invalid("match", str(error)) from None


def _utc(field: str, moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return as_utc(moment)
    except ValueError as error:  # an offset that moves it outside years 1-9999
        raise _invalid(field, str(error)) from None


@router.get("/event-types", response_model=list[EventTypeCount], summary="Stored event types with counts",
            responses=error_responses(503))
def event_types(store: StoreDep):
    return [EventTypeCount(event_type=t, count=c) for t, c in sorted(store.counts_by_type().items())]


@router.get("/archive", response_model=ArchiveOut, summary="What the archive holds, and how long it keeps events",
            responses=error_responses(503))
def archive(store: StoreDep, services: ServicesDep):
    span = store.span()
    return ArchiveOut(
        events=span.events, oldest_event=span.oldest, newest_event=span.newest, pruned_before=span.pruned_before,
        retention=RetentionPolicy.from_settings(services.settings).describe(),
        indexed_fields=[IndexedFieldOut(field=index.field, ready=index.ready) for index in store.field_indexes()],
    )


@router.get("/events", response_model=EventPage, summary="Stored events in global order, page by page",
            responses=error_responses(422, 503))
def list_events(
    store: StoreDep,
    event_type: Annotated[list[str] | None, Query(description="Only these types (repeat the parameter).")] = None,
    since: Annotated[datetime | None, Query(description="timestamp >= since (ISO 8601; naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="timestamp < until")] = None,
    match: Annotated[str | None, Query(description="JSON object: equality on top-level payload fields",
                                       examples=['{"order_id": "ORD-1234"}'])] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="Cursor: events after this position.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
):
    since = _utc("since", since)
    until = _utc("until", until)
    try:
        check_window(since, until)
    except ValueError as error:
        raise _invalid("until", str(error)) from None
    query = EventQuery(
        event_types=tuple(event_type) if event_type else None, since=since, until=until,
        after_position=after, limit=limit, match=_match(match),
    )
    items = [EventOut.of(event) for event in islice(store.read(query), limit)]
    next_after = items[-1].position if len(items) == limit else None
    return EventPage(items=items, next_after=next_after)


@router.get("/events/{event_id}", response_model=EventOut, summary="One stored event by its event_id",
            responses=error_responses(404, 503))
def get_event(event_id: str, store: StoreDep):
    try:
        canonical = canonical_uuid(event_id)
    except ValueError:
        raise HTTPException(404, f"no event {event_id!r}") from None
    event = store.get(canonical)
    if event is None:
        raise HTTPException(404, f"no event {event_id!r}")
    return EventOut.of(event)
