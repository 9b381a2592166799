"""Recording a running job's progress in the job repository, from a thread of its own.

The run hands over snapshots (`record`); this thread saves the newest one, so a slow save never
stalls publishing and a burst of snapshots costs one save. A save that fails (the store locked,
the disk full, EventStoreDB unreachable) is retried with a growing delay until it succeeds: until
then the run's in-memory job stays the truth the API shows. `recorded_confirmed` is what a crash
would leave behind: the run never lets its sent-but-unrecorded events exceed its resend bound.
"""
from __future__ import annotations

import logging
import threading

from eventreplay.replay.job_records import JobRepository
from eventreplay.replay.jobs import ReplayJob
from eventreplay.retrying import Interrupted, RetryPolicy
from eventreplay.store.base import PersistenceError

log = logging.getLogger(__name__)


class JobRecorder:
    def __init__(self, repository: JobRepository, job: ReplayJob):
        self._repository = repository
        self._job_id = job.id
        self._changed = threading.Condition()
        self._newest: ReplayJob | None = None  # handed over, not saved yet
        self._saving = False
        self._closing = False
        self._abandoned = threading.Event()
        self._retry = RetryPolicy(interrupt=self._abandoned, first=0.1, longest=5.0)
        self.recorded_confirmed = job.confirmed  # `confirmed` of the last snapshot saved
        self.error: str | None = None  # why the last save failed, until one succeeds
        self._thread = threading.Thread(target=self._run, name=f"record-{job.id[:8]}", daemon=True)
        self._thread.start()

    def record(self, snapshot: ReplayJob) -> None:
        with self._changed:
            self._newest = snapshot
            self._changed.notify_all()

    def finish(self, final: ReplayJob, *, timeout: float | None = None) -> bool:
        """Record the final snapshot and wait until it is saved (or `timeout` passes, or the
        recorder is abandoned). True when saved."""
        with self._changed:
            self._newest = final
            self._closing = True
            self._changed.notify_all()
            saved = self._changed.wait_for(lambda: self._idle() or self._abandoned.is_set(), timeout)
            return saved and self._idle()

    def abandon(self) -> None:
        """Stop retrying (the process is shutting down); what is not saved stays unsaved."""
        self._abandoned.set()
        with self._changed:
            self._changed.notify_all()

    def _idle(self) -> bool:
        return self._newest is None and not self._saving

    def _take_newest(self) -> ReplayJob:
        with self._changed:
            snapshot, self._newest = self._newest, None
            self._saving = True
            return snapshot

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._newest is not None or self._closing or self._abandoned.is_set())
                if self._abandoned.is_set() or (self._newest is None and self._closing):
                    return
            try:
                saved = self._save_newest()
            except Interrupted:
                saved = None  # abandoned while retrying
            with self._changed:
                self._saving = False
                if saved is not None:
                    self.recorded_confirmed = saved.confirmed
                    self.error = None
                self._changed.notify_all()
            if saved is None:
                return

    def _save_newest(self) -> ReplayJob:
        """Save the newest snapshot; on failure wait and save the newest one then (maybe newer)."""
        snapshot: ReplayJob | None = None
        for attempt in self._retry.retrying(PersistenceError, on_fault=self._note_failure):
            with attempt:
                newer = self._take_newest()
                if newer is not None:
                    snapshot = newer
                self._repository.save(snapshot)
        self._retry.progressed()
        return snapshot

    def _note_failure(self, error: BaseException, delay: float) -> None:
        self.error = str(error)
        log.warning("replay %s: could not record its state (%s); retrying in %.1f s", self._job_id, error, delay)
