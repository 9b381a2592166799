"""The replay job: its states, every allowed change between them, and the record kept of it while it
runs and after it ended.

Every state change is a method of ReplayJob (`start`, `end`, `reopen`, `take_over`) that checks the
move, so "a job never goes back from an end state" holds by construction: only a resume (`reopen`)
leaves `interrupted`, `failed` or `cancelled`, and nothing leaves `completed`.
"""
from __future__ import annotations

import enum
import hashlib
import uuid
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from eventreplay.replay.spec import ReplaySpec

EMPTY_DIGEST = hashlib.sha256().hexdigest()


class JobNotFound(Exception):
    """No job has this id (HTTP 404)."""


class JobStateConflict(Exception):
    """The job is in a state that does not allow the operation (HTTP 409)."""


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


# Jobs in these states have a run somewhere (or had one in a process that stopped).
UNFINISHED_STATES = (JobState.pending, JobState.running)

_MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.pending: frozenset({JobState.running, JobState.cancelled, JobState.interrupted, JobState.failed}),
    JobState.running: frozenset({JobState.completed, JobState.failed, JobState.cancelled, JobState.interrupted}),
    JobState.completed: frozenset(),
    JobState.failed: frozenset({JobState.pending}),
    JobState.cancelled: frozenset({JobState.pending}),
    JobState.interrupted: frozenset({JobState.pending}),
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReplayJob(BaseModel):
    """One replay. Counts and positions describe what the broker confirmed so far:

    - `confirmed` events are exactly the first `confirmed` events matching the request, in store
      order (the run advances only over a contiguous run of confirms), and `last_position` is the
      position of the last of them. That is the point a resume continues after.
    - `published` counts those plus the ones sent and not yet confirmed.
    - `digest` is SHA-256 over the bodies of those confirmed events, in order. A resume re-reads
      them to rebuild the hash (a hashlib object cannot be persisted), so a resumed job's digest
      covers its whole content, the same as a replay that never stopped.
    """

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    state: JobState = JobState.pending
    request: ReplaySpec
    target: str = ""
    # Matching events (respecting `limit`); None while the job runs when counting them first would
    # mean reading them all twice (a payload match no index serves): then known at the end.
    matched: int | None = 0
    published: int = 0
    confirmed: int = 0
    first_position: int | None = None
    last_position: int | None = None
    last_event_timestamp: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    # While a running job waits out a broker or store fault: why, and until when it keeps trying.
    reconnecting: str | None = None
    # What the job cannot deliver although asked: events of its range the retention deleted.
    notice: str | None = None
    digest: str = EMPTY_DIGEST
    runs: int = 0  # how many times the job was started (1 + resumes)
    # The store's last position when the job first started: the job replays what was archived up
    # to then, so events arriving meanwhile neither stretch it nor change a resume's content.
    up_to_position: int | None = None
    # The lease (leases.py): the API instance running the job and when it last said so. Another
    # instance takes the job over when the record stops changing for a lease's time.
    owner: str | None = None
    heartbeat_at: datetime | None = None
    takeovers: int = 0  # how many times an instance took the job over from one that stopped
    # Asked by an instance that is not the owner; the owner ends the job at its next heartbeat.
    cancel_requested: bool = False
    # The record's version in the job repository (not part of the record): a save succeeds only
    # over the version it read (compare-and-set), so two instances never both change a job.
    revision: int = Field(0, exclude=True)

    @classmethod
    def create(cls, spec: ReplaySpec) -> "ReplayJob":
        return cls(request=spec, target=spec.target_description)

    def copy_of(self) -> "ReplayJob":
        return self.model_copy(deep=True)

    # state changes ------------------------------------------------------------------------------
    def _move(self, to: JobState) -> None:
        if to not in _MOVES[self.state]:
            if self.state.ended:
                raise JobStateConflict(f"replay {self.id} has already ended ({self.state.value})")
            raise JobStateConflict(f"replay {self.id} is {self.state.value}; it cannot become {to.value}")
        self.state = to

    def start(self) -> None:
        """pending -> running: a run (the first, or a resume's) has begun."""
        self._move(JobState.running)
        self.runs += 1
        self.started_at, self.ended_at, self.error, self.reconnecting = utcnow(), None, None, None

    def end(self, state: JobState, error: str | None = None) -> None:
        """pending/running -> completed, failed, cancelled or interrupted."""
        if not state.ended:
            raise ValueError(f"{state.value} is not an end state")
        self._move(state)
        self.ended_at, self.error, self.reconnecting = utcnow(), error, None

    def take_over(self, owner: str) -> None:
        """pending/running -> pending under a new owner: the instance that ran it stopped without a
        word (its lease expired); the new owner's run resumes after the last confirmed event."""
        if self.state.ended:
            raise JobStateConflict(f"replay {self.id} has already ended ({self.state.value})")
        self.state, self.owner, self.takeovers = JobState.pending, owner, self.takeovers + 1
        self.reconnecting = None

    def reopen(self) -> None:
        """interrupted/failed/cancelled -> pending, for a resume."""
        self._move(JobState.pending)
        self.ended_at, self.error, self.reconnecting = None, None, None
