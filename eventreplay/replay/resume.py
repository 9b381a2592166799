"""A run that continues a job (a resume, or a takeover) picks up after the last confirmed event with
the earlier runs' counts and digest."""
from __future__ import annotations

import hashlib
import logging

from eventreplay.replay.confirms import ReplayConfirms
from eventreplay.replay.jobs import ReplayJob
from eventreplay.replay.read_ahead import closing
from eventreplay.store.base import EventStore

log = logging.getLogger(__name__)


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
