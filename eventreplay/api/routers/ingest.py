"""The ingest side at a glance, for the UI's overview: the consumer's queue (depth, consumers),
the dead-letter queue's depth, how far behind the archive is, and events per minute over the
last hour."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter

from eventreplay.api.broker_admin import QueueStats
from eventreplay.api.deps import BrokerDep, ServicesDep, StoreDep
from eventreplay.api.errors import BROKER_ERRORS
from eventreplay.api.models import DeadLetterQueueOut, IngestOut, MinuteCount, QueueOut, error_responses

router = APIRouter(tags=["ingest"])

CHART_MINUTES = 60


def chart_start(now: datetime, minutes: int = CHART_MINUTES) -> datetime:
    """The first minute of a chart of `minutes` whose last minute is the current one."""
    return now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)


def lag_seconds(queue: QueueStats | None, newest: datetime | None, now: datetime) -> float | None:
    """How far the archive is behind the broker. An empty queue: nothing waits, 0. Messages waiting:
    they were published after what is stored, so the newest stored event's age is how long the
    archive has been behind at least (the queue cannot be read without taking messages). Unknown
    (None) without a queue, or with messages waiting and nothing stored."""
    if queue is None:
        return None
    if queue.messages == 0:
        return 0.0
    if newest is None:
        return None
    return max((now - newest).total_seconds(), 0.0)


@router.get("/ingest", response_model=IngestOut, summary="Consumer state, dead letters and events per minute",
            responses=error_responses(503))
def ingest(store: StoreDep, broker: BrokerDep, services: ServicesDep):
    settings = services.settings
    now = datetime.now(timezone.utc)
    archive_queue = dead_letters = None
    broker_state = "ok"
    try:
        archive_queue = broker.queue_stats(settings.archive_queue)
        dead_letters = broker.queue_stats(settings.dead_letter_queue)
    except BROKER_ERRORS + (OSError,) as error:
        broker_state = f"unreachable: {error.__class__.__name__} {error}".strip()
    span = store.span()
    start = chart_start(now)
    counts = store.counts_per_minute(start, CHART_MINUTES)
    return IngestOut(
        archive_queue=QueueOut(name=settings.archive_queue, messages=archive_queue.messages,
                               consumers=archive_queue.consumers) if archive_queue else None,
        dead_letter_queue=DeadLetterQueueOut(name=settings.dead_letter_queue, messages=dead_letters.messages)
        if dead_letters else None,
        broker=broker_state,
        consumer_connected=bool(archive_queue and archive_queue.consumers > 0),
        lag_seconds=lag_seconds(archive_queue, span.newest, now),
        per_minute=[MinuteCount(minute=start + timedelta(minutes=i), count=n) for i, n in enumerate(counts)],
        oldest_event=span.oldest, newest_event=span.newest, events=span.events,
    )
