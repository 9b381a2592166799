"""The replay job: its states and the record kept of it while it runs and after it ended."""
from __future__ import annotations

import enum
import hashlib
import uuid
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from eventreplay.replay.spec import ReplaySpec

EMPTY_DIGEST = hashlib.sha256().hexdigest()


class JobState(str, enum.Enum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"

    @property
    def ended(self) -> bool:
        return self not in (JobState.pending, JobState.running)

    @property
    def resumable(self) -> bool:
        return self in (JobState.interrupted, JobState.failed, JobState.cancelled)


ACTIVE_STATES = (JobState.pending, JobState.running)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReplayJob(BaseModel):
    """One replay. Counts and positions describe what the broker confirmed so far:

    - `confirmed` events are exactly the first `confirmed` events matching the request, in store
      order (the engine advances only over a contiguous run of confirms), and `last_position` is the
      position of the last of them. That is the point a resume continues after.
    - `digest` is SHA-256 over the bodies of those confirmed events, in order. A resume re-reads
      them to rebuild the hash (a hashlib object cannot be persisted), so a resumed job's digest
      covers its whole content, the same as a replay that never stopped.
    """

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    state: JobState = JobState.pending
    request: ReplaySpec
    target: str = ""
    matched: int = 0
    published: int = 0
    confirmed: int = 0
    first_position: int | None = None
    last_position: int | None = None
    last_event_timestamp: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    digest: str = EMPTY_DIGEST
    runs: int = 0  # how many times the job was started (1 + resumes)
    # The store's last position when the job first started: the job replays what was archived up
    # to then, so events arriving meanwhile neither stretch it nor change a resume's content.
    up_to_position: int | None = None

    @classmethod
    def create(cls, spec: ReplaySpec) -> "ReplayJob":
        return cls(request=spec, target=spec.target_description)

    def copy_of(self) -> "ReplayJob":
        return self.model_copy(deep=True)
