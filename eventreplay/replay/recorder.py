"""Recording a running job's progress in the job repository, from a thread of its own, and keeping
the job's lease (leases.py).

The run hands over snapshots (`record`); this thread saves the newest one, so a slow save never
stalls publishing and a burst of snapshots costs one save. With nothing new to save for a while, it
saves the last snapshot again: the heartbeat that renews the lease. A save that fails (the store
locked, the disk full, EventStoreDB unreachable) is retried with a growing delay until it succeeds:
until then the run's in-memory job stays the truth the API shows. `recorded_confirmed` is what a
crash would leave behind: the run never lets its sent-but-unrecorded events exceed its resend bound.

Every save is a compare-and-set. When it finds the record changed, the record says why: another
instance asked for a cancel (`cancel_requested`, passed on to the run, then saved over), or another
instance owns the job now (`lost`: the run ends and nothing more is saved).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from eventreplay.replay.job_records import JobChanged, JobRepository
from eventreplay.replay.jobs import ReplayJob, utcnow
from eventreplay.replay.leases import LeasePolicy
from eventreplay.retrying import Interrupted, RetryPolicy
from eventreplay.store.base import PersistenceError

log = logging.getLogger(__name__)


class _Lost(Exception):
    """Another instance owns the job now."""


class JobRecorder:
    def __init__(self, repository: JobRepository, job: ReplayJob, *, owner: str,
                 lease: LeasePolicy = LeasePolicy()):
        self._repository = repository
        self._job_id = job.id
        self.owner, self.lease = owner, lease
        self._revision = job.revision  # the record's version as this instance last saved or read it
        self._renewed_at = time.monotonic()  # the caller has just saved (claimed) the job
        self._last: ReplayJob = job.copy_of()  # the last snapshot saved: what a heartbeat saves again
        self._changed = threading.Condition()
        self._newest: ReplayJob | None = None  # handed over, not saved yet
        self._saving = False
        self._closing = False
        self._abandoned = threading.Event()
        self._retry = RetryPolicy(interrupt=self._abandoned, first=0.1, longest=5.0)
        self.recorded_confirmed = job.confirmed  # `confirmed` of the last snapshot saved
        self.error: str | None = None  # why the last save failed, until one succeeds
        self.cancel_requested = job.cancel_requested
        self.lost = threading.Event()
        # the run's hooks: a cancel asked through another instance, the job taken over
        self.on_cancel: Callable[[], None] = lambda: None
        self.on_lost: Callable[[], None] = lambda: None
        self._thread = threading.Thread(target=self._run, name=f"record-{job.id[:8]}", daemon=True)
        self._thread.start()

    def record(self, snapshot: ReplayJob) -> None:
        with self._changed:
            self._newest = snapshot
            self._changed.notify_all()

    def lease_fresh(self) -> bool:
        """Renewed recently enough that nobody can have taken the job over: publishing may go on."""
        return time.monotonic() - self._renewed_at < self.lease.pause_after

    def finish(self, final: ReplayJob, *, timeout: float | None = None) -> bool:
        """Record the final snapshot and wait until it is saved (or `timeout` passes, or the
        recorder is abandoned or lost the job). True when saved."""
        with self._changed:
            self._newest = final
            self._closing = True
            self._changed.notify_all()
            saved = self._changed.wait_for(lambda: self._idle() or self._abandoned.is_set(), timeout)
            return saved and self._idle() and not self.lost.is_set()

    def abandon(self) -> None:
        """Stop retrying (the process is shutting down); what is not saved stays unsaved."""
        self._abandoned.set()
        with self._changed:
            self._changed.notify_all()

    def _idle(self) -> bool:
        return self._newest is None and not self._saving

    def _take_newest(self) -> ReplayJob | None:
        with self._changed:
            snapshot, self._newest = self._newest, None
            self._saving = True
            return snapshot

    def _run(self) -> None:
        while True:
            with self._changed:
                woken = self._changed.wait_for(
                    lambda: self._newest is not None or self._closing or self._abandoned.is_set(),
                    timeout=self.lease.renew_every)
                if self._abandoned.is_set() or (self._newest is None and self._closing):
                    return
            try:
                saved = self._save_newest(heartbeat=not woken)
            except (Interrupted, _Lost):
                saved = None  # abandoned while retrying, or the job is another instance's now
            with self._changed:
                self._saving = False
                if saved is not None:
                    self.recorded_confirmed = saved.confirmed
                    self.error = None
                self._changed.notify_all()
            if saved is None:
                return

    def _save_newest(self, *, heartbeat: bool) -> ReplayJob:
        """Save the newest snapshot (with nothing new: the last one again); on failure wait and save
        the newest one then (maybe newer)."""
        snapshot: ReplayJob | None = None if not heartbeat else self._last.copy_of()
        for attempt in self._retry.retrying(PersistenceError, on_fault=self._note_failure):
            with attempt:
                newer = self._take_newest()
                if newer is not None:
                    snapshot = newer
                self._save(snapshot)
        self._retry.progressed()
        self._last = snapshot
        return snapshot

    def _save(self, snapshot: ReplayJob) -> None:
        """One compare-and-set save; a record changed by another instance is read and settled."""
        while True:
            started = time.monotonic()
            snapshot.owner, snapshot.heartbeat_at = self.owner, utcnow()
            snapshot.cancel_requested = snapshot.cancel_requested or self.cancel_requested
            snapshot.revision = self._revision
            try:
                self._repository.save(snapshot)
            except JobChanged:
                self._settle_change()
                continue
            self._revision, self._renewed_at = snapshot.revision, started
            return

    def _settle_change(self) -> None:
        record = self._repository.get(self._job_id)
        if record is None or record.owner != self.owner:
            log.warning("replay %s: taken over by %s (this instance's lease expired); this run stops",
                        self._job_id, record.owner if record else "nobody (the job is gone)")
            self.lost.set()
            self.on_lost()
            raise _Lost
        self._revision = record.revision  # ours (a save that timed out but landed), or a cancel request
        if record.cancel_requested and not self.cancel_requested:
            log.info("replay %s: cancel requested through another instance", self._job_id)
            self.cancel_requested = True
            self.on_cancel()

    def _note_failure(self, error: BaseException, delay: float) -> None:
        self.error = str(error)
        log.warning("replay %s: could not record its state (%s); retrying in %.1f s", self._job_id, error, delay)
