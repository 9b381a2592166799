"""The job repository interface.

Several API instances share one repository, so every save is a compare-and-set: it succeeds only
over the record's version the job was read at (`ReplayJob.revision`; 0 = a job not saved yet) and
raises JobChanged otherwise. A successful save sets `job.revision` to the new version.
"""
from __future__ import annotations

import abc

from eventreplay.replay.jobs import JobState, ReplayJob


class JobChanged(Exception):
    """The job's record changed since it was read (another instance saved it), or a new job's id
    exists already: read it again and decide."""


class JobRepository(abc.ABC):
    @abc.abstractmethod
    def save(self, job: ReplayJob) -> None:
        """Insert (revision 0) or update (revision = the stored one) the job's record, then advance
        `job.revision`; JobChanged when the stored revision is another; PersistenceError when the
        store cannot take it."""

    @abc.abstractmethod
    def get(self, job_id: str) -> ReplayJob | None:
        """The job with its stored revision."""

    @abc.abstractmethod
    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        """Jobs, newest first, with their stored revisions."""

    def close(self) -> None:
        pass
