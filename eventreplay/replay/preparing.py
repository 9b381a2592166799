"""What a run does before it publishes: fix the job's content (what the store holds now), say what
the retention has deleted of it, pick up after the earlier runs' confirmed events (a resume, a
takeover), and count what is left to send, from an index or the tallies, or not at all when that
would mean reading every event twice.
"""
from __future__ import annotations

import hashlib
import logging

from eventreplay.replay.confirms import ReplayConfirms
from eventreplay.replay.jobs import ReplayJob
from eventreplay.replay.progress import RunProgress
from eventreplay.replay.read_ahead import closing
from eventreplay.store.base import EventStore

log = logging.getLogger(__name__)


def prepare(job: ReplayJob, store: EventStore, progress: RunProgress) -> None:
    if job.up_to_position is None:
        progress.change(up_to_position=store.last_position(), notice=pruned_notice(job, store))
    if progress.tracker is None:
        progress.tracker = confirms_after_earlier_runs(job, store)
    left = remaining(job, progress.tracker)
    query = job.request.query(after_position=job.last_position, limit=left, up_to_position=job.up_to_position)
    if left == 0:
        progress.change(matched=job.confirmed)
    elif store.reads_everything(query):
        progress.change(matched=None)  # counted by the one read that publishes them
    else:
        progress.change(matched=job.confirmed + store.count(query))


def remaining(job: ReplayJob, tracker: ReplayConfirms) -> int | None:
    """Events still to confirm under the job's limit (None: no limit)."""
    limit = job.request.limit
    return None if limit is None else max(limit - tracker.confirmed, 0)


def pruned_notice(job: ReplayJob, store: EventStore) -> str | None:
    pruned = store.span().pruned_before
    since = job.request.since
    if pruned is None or (since is not None and since >= pruned):
        return None
    return (f"events older than {pruned.isoformat(timespec='seconds')} were deleted by the retention policy: "
            "this replay cannot include them")


def confirms_after_earlier_runs(job: ReplayJob, store: EventStore) -> ReplayConfirms:
    """The tracker a run starts with. A hashlib object cannot be saved, so the digest of the earlier
    runs' events is rebuilt: they are the first `confirmed` matches, read again."""
    hasher = hashlib.sha256()
    if job.confirmed:
        query = job.request.query(limit=job.confirmed, up_to_position=job.up_to_position)
        seen = 0
        for event in closing(store.read(query)):
            hasher.update(event.body)
            seen += 1
        if seen != job.confirmed:
            log.warning("replay %s: %d confirmed events, %d found again", job.id, job.confirmed, seen)
    return ReplayConfirms(confirmed=job.confirmed, first_position=job.first_position,
                          last_position=job.last_position, last_timestamp=job.last_event_timestamp, digest=hasher)
