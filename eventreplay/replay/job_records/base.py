"""The job repository interface."""
from __future__ import annotations

import abc

from eventreplay.replay.jobs import JobState, ReplayJob


class JobRepository(abc.ABC):
    @abc.abstractmethod
    def save(self, job: ReplayJob) -> None:
        """Insert or replace the job's record (PersistenceError when the store cannot take it)."""

    @abc.abstractmethod
    def get(self, job_id: str) -> ReplayJob | None: ...

    @abc.abstractmethod
    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        """Jobs, newest first."""

    def close(self) -> None:
        pass
