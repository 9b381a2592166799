"""Request and response models of the API (docs/api.md). Requests are validated domain specs;
responses are built from the domain objects and never expose more than the contract says."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store.base import StoredEvent

EXAMPLE_JOB_ID = "0b7c6a57-5f43-4f0e-9a4c-3f8e2f3c1d2e"


class ReplayRequest(ReplaySpec):
    """Body of `POST /replay`. Exactly one of `target_queue` / `target_exchange` (except with
    `dry_run`); no event type at all replays every type."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"event_type": "OrderPlaced", "target_queue": "replayed"},
                {
                    "event_types": ["OrderPlaced", "PaymentProcessed", "OrderShipped"],
                    "match": {"order_id": "ORD-1234"},
                    "since": "2024-05-01T00:00:00Z",
                    "until": "2024-05-02T00:00:00Z",
                    "target_queue": "order-rebuild",
                    "create_queue": True,
                    "rate": 500,
                },
                {"event_type": "UserRegistered", "target_exchange": "ecommerce-exchange", "speed": 60},
                {"event_type": "OrderPlaced", "limit": 10, "dry_run": True},
            ]
        },
    )


REPLAY_REQUEST_EXAMPLES = {
    "prototype": {
        "summary": "The prototype's request",
        "value": {"event_type": "OrderPlaced", "target_queue": "replayed"},
    },
    "one order": {
        "summary": "One order's whole history, paced, into a new queue",
        "value": {
            "match": {"order_id": "ORD-1234"},
            "target_queue": "order-rebuild",
            "create_queue": True,
            "rate": 500,
        },
    },
    "time window to exchange": {
        "summary": "A day of orders back into the original exchange, a minute per second",
        "value": {
            "event_types": ["OrderPlaced", "PaymentProcessed"],
            "since": "2024-05-01T00:00:00Z",
            "until": "2024-05-02T00:00:00Z",
            "target_exchange": "ecommerce-exchange",
            "speed": 60,
        },
    },
    "dry run": {
        "summary": "Count and samples only",
        "value": {"event_type": "OrderPlaced", "limit": 10, "dry_run": True},
    },
}


class ReplayJobOut(BaseModel):
    """A replay job. Counts and positions are of events confirmed by the broker; `digest` is
    SHA-256 over the bodies of the confirmed events, in order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_JOB_ID, "state": "completed",
                    "request": {"event_type": "OrderPlaced", "target_queue": "replayed"},
                    "target": "queue 'replayed'", "matched": 120, "published": 120, "confirmed": 120,
                    "first_position": 3, "last_position": 1198,
                    "last_event_timestamp": "2024-05-01T12:00:00Z",
                    "created_at": "2024-05-02T09:00:00Z", "started_at": "2024-05-02T09:00:00.01Z",
                    "ended_at": "2024-05-02T09:00:00.2Z", "error": None, "reconnecting": None,
                    "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "runs": 1,
                    "up_to_position": 1200,
                }
            ]
        }
    )

    id: str
    state: JobState
    request: dict[str, Any] = Field(description="The request, as validated (unset fields left out).")
    target: str = Field(description="Where the events go, in words.")
    matched: int | None = Field(
        description="Matching events (respecting `limit`), known once the job started; null while a job whose "
        "payload match no index serves runs (it is counted by the read that replays the events).")
    published: int
    confirmed: int
    first_position: int | None
    last_position: int | None = Field(description="Position of the last confirmed event: a resume continues after it.")
    last_event_timestamp: datetime | None = Field(description="Timestamp of the last confirmed event.")
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    notice: str | None = Field(
        None, description="What the job cannot deliver although asked: events of its range the retention deleted.",
    )
    reconnecting: str | None = Field(
        None, description="While a running job waits out a broker or store fault: why, and until when it keeps trying.",
    )
    digest: str
    runs: int = Field(description="How many times the job was started (1 + resumes and takeovers).")
    owner: str | None = Field(
        None, description="The API instance that runs (or last ran) the job: host:pid:suffix, or INSTANCE_NAME:suffix.")
    heartbeat_at: datetime | None = Field(
        None, description="When the owner last saved the job's record (at least every JOB_LEASE_S / 5 while it runs).")
    takeovers: int = Field(
        0, description="How many times an instance took the job over from one that had stopped (lease expired).")
    cancel_requested: bool = Field(
        False, description="A cancel asked through an instance that does not run the job: its owner ends it shortly.")
    up_to_position: int | None = Field(
        None, description="The store's last position when the job first started: events archived later are "
        "not part of it (so they neither stretch the job nor change what a resume delivers).",
    )

    @classmethod
    def of(cls, job: ReplayJob) -> "ReplayJobOut":
        data = job.model_dump()
        data["request"] = job.request.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        return cls.model_validate(data)


class EventOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "position": 17, "event_id": "5c1f0a52-3f0b-4a57-9b3e-2d8c4b1f6a10",
                    "event_type": "OrderPlaced", "timestamp": "2024-05-01T12:00:00Z",
                    "routing_key": "order-events", "exchange": "ecommerce-exchange",
                    "received_at": "2024-05-01T12:00:00.003Z",
                    "properties": {"message_id": "5c1f0a52-3f0b-4a57-9b3e-2d8c4b1f6a10", "type": "OrderPlaced",
                                   "content_type": "application/json", "delivery_mode": 2},
                    "body": {"event_id": "5c1f0a52-3f0b-4a57-9b3e-2d8c4b1f6a10", "event_type": "OrderPlaced",
                             "timestamp": "2024-05-01T12:00:00", "order_id": "ORD-1234"},
                }
            ]
        }
    )

    position: int
    event_id: str
    event_type: str
    timestamp: datetime
    routing_key: str
    exchange: str
    received_at: datetime
    properties: dict[str, Any]
    body: Any = Field(description="The event's JSON object (text if the stored body is not JSON).")

    @classmethod
    def of(cls, event: StoredEvent) -> "EventOut":
        try:
            body: Any = json.loads(event.body)
        except ValueError:
            body = event.body.decode("utf-8", errors="replace")
        return cls(
            position=event.position, event_id=event.event_id, event_type=event.event_type,
            timestamp=event.timestamp, routing_key=event.routing_key, exchange=event.exchange,
            received_at=event.received_at, properties=dict(event.properties), body=body,
        )


class DryRunResult(BaseModel):
    dry_run: bool = True
    matched: int = Field(description="Matching events (respecting `limit`).")
    samples: list[EventOut] = Field(description="Up to 5 of them, the first in store order.")


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


class EventTypeCount(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"event_type": "OrderPlaced", "count": 12}]})
    event_type: str
    count: int


class IndexedFieldOut(BaseModel):
    field: str
    ready: bool = Field(description="False until `task reindex` has indexed the events stored before the field was.")


class ArchiveOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "events": 120000, "oldest_event": "2024-02-01T00:00:03Z", "newest_event": "2024-05-01T12:00:00Z",
        "pruned_before": "2024-02-01T00:00:00Z", "retention": "90 days for every type",
        "indexed_fields": [{"field": "order_id", "ready": True}]}]})
    events: int
    oldest_event: datetime | None = Field(description="The oldest stored event's own timestamp.")
    newest_event: datetime | None
    pruned_before: datetime | None = Field(description="Events older than this were deleted by the retention.")
    retention: str = Field(description="How long events are kept (RETENTION, RETENTION_BY_TYPE).")
    indexed_fields: list[IndexedFieldOut]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"store": "ok", "broker": "ok"},
                                        {"store": "ok", "broker": "unreachable: ConnectionRefusedError"}]}
    )
    store: str
    broker: str


class ErrorOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "no replay job 'x'"}]})
    detail: str


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorOut(BaseModel):
    detail: str
    errors: list[FieldError]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        401: "Missing or wrong X-API-Key (only when REPLAY_API_KEY is set)",
        404: "Unknown id, queue or exchange",
        409: "The job is in the wrong state",
        413: "The request body is larger than API_MAX_BODY_BYTES",
        422: "Invalid input",
        503: "The event store or the broker is unavailable",
    }
    return {
        code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": meaning[code]}
        for code in codes
    }


# -- dead letters (eventreplay/dead_letters, docs/api.md "Dead letters") ----------------------------

class DeadLetterOut(BaseModel):
    id: str = Field(description="stable and unique: the x-dead-letter-id header, or a hash of body and headers")
    reason: str
    dead_lettered_at: str | None = Field(None, description="ISO 8601 UTC; null for dead letters older than the header")
    routing_key: str | None = Field(None, description="the original routing key")
    exchange: str | None = Field(None, description="the original exchange")
    message_id: str | None = None
    event_type: str | None = None
    content_type: str | None = None
    size: int = Field(description="body size in bytes")
    preview: str = Field(description="the start of the body as text (200 characters at most)")

    @classmethod
    def of(cls, letter) -> "DeadLetterOut":
        return cls(id=letter.id, reason=letter.reason, dead_lettered_at=letter.dead_lettered_at,
                   routing_key=letter.routing_key, exchange=letter.exchange, message_id=letter.message_id,
                   event_type=letter.event_type, content_type=letter.content_type, size=letter.size,
                   preview=letter.preview)


class ReasonCount(BaseModel):
    reason: str
    count: int


class DeadLetterList(BaseModel):
    total: int = Field(description="messages in the dead-letter queue")
    by_reason: list[ReasonCount] = Field(description="counts over the messages looked at (the first 10,000)")
    items: list[DeadLetterOut]


class DeadLetterSelection(BaseModel):
    """Body of `POST /dead-letters/redrive` and `/discard`: `reason` and/or `ids` (both: the
    intersection; neither: every dead letter)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "invalid event: timestamp: Field required"},
                                        {"ids": ["5b0f4f3e-8f7e-4a59-9d0e-1c2a3b4c5d6e"]}, {}]},
    )
    reason: str | None = Field(None, min_length=1, max_length=2000, description="exactly a reason as listed")
    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=10_000)


class RedriveResult(BaseModel):
    redriven: int
    remaining: int


class DiscardResult(BaseModel):
    discarded: int
    remaining: int


# -- ingest (eventreplay/api/routers/ingest.py, docs/api.md "Ingest") -------------------------------

class QueueOut(BaseModel):
    name: str
    messages: int = Field(description="ready to deliver (not counting delivered, unacknowledged ones)")
    consumers: int


class DeadLetterQueueOut(BaseModel):
    name: str
    messages: int


class MinuteCount(BaseModel):
    minute: datetime = Field(description="the minute's start (UTC)")
    count: int = Field(description="stored events whose own timestamp falls in this minute")


class IngestOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "archive_queue": {"name": "eventstore-writer-queue", "messages": 0, "consumers": 1},
        "dead_letter_queue": {"name": "eventstore-writer-queue.dead-letter", "messages": 2},
        "broker": "ok", "consumer_connected": True, "lag_seconds": 0.0,
        "per_minute": [{"minute": "2024-05-01T11:01:00Z", "count": 298}, "... 60 items ..."],
        "oldest_event": "2024-02-01T00:00:03Z", "newest_event": "2024-05-01T12:00:00Z", "events": 120000}]})
    archive_queue: QueueOut | None = Field(description="null when the queue does not exist or the broker is unreachable")
    dead_letter_queue: DeadLetterQueueOut | None
    broker: str = Field(description='"ok" or "unreachable: <reason>"')
    consumer_connected: bool = Field(description="the archive queue has at least one consumer")
    lag_seconds: float | None = Field(description=(
        "0 when the archive queue is empty; while messages wait in it, how old the newest stored event "
        "is (now - its timestamp): the waiting messages are newer than what is stored. null when unknown "
        "(no queue, broker unreachable, or messages waiting with nothing stored yet)."))
    per_minute: list[MinuteCount] = Field(description="the last 60 minutes, oldest first, the current minute last")
    oldest_event: datetime | None
    newest_event: datetime | None
    events: int
