"""The replay engine: starts, tracks, cancels and resumes replay runs (run.py), one thread each.
Safe to call from any thread.

A run stays known here until its final state is recorded: until then `get` answers from the run's
in-memory job, which is the truth while the store cannot take it (a lock, a full disk), so a job
never seems to go back to an earlier state.
"""
from __future__ import annotations

import logging
import threading
import time

from eventreplay.replay.job_records import JobRepository
from eventreplay.replay.jobs import UNFINISHED_STATES, JobNotFound, JobState, JobStateConflict, ReplayJob
from eventreplay.replay.recorder import JobRecorder
from eventreplay.replay.progress import ReplayObserver
from eventreplay.replay.policy import RunPolicy
from eventreplay.replay.run import ReplayRun
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store.base import EventStore

log = logging.getLogger(__name__)

__all__ = ["JobNotFound", "JobStateConflict", "ReplayEngine", "RunPolicy"]


class _NoMetrics:
    def events_replayed(self, count: int) -> None:
        pass

    def confirm_latency(self, seconds: float) -> None:
        pass


class ReplayEngine:
    def __init__(self, store: EventStore, repository: JobRepository, amqp_url: str, *,
                 observer: ReplayObserver | None = None, policy: RunPolicy = RunPolicy()):
        self.store = store
        self.repository = repository
        self.amqp_url = amqp_url
        self.observer = observer or _NoMetrics()
        self.policy = policy
        self._lock = threading.Lock()
        self._runs: dict[str, ReplayRun] = {}
        self._closed = False

    # lifecycle ------------------------------------------------------------------------------------
    def interrupt_leftovers(self) -> int:
        """Jobs left pending/running by a previous process can no longer progress: mark them
        `interrupted` (resumable)."""
        count = 0
        for state in UNFINISHED_STATES:
            for job in self.repository.list(state=state):
                if self._live(job.id) is not None:
                    continue
                job.end(JobState.interrupted, error="the API process stopped during the replay; resume it to continue")
                self.repository.save(job)
                count += 1
        if count:
            log.warning("%d replay job(s) of a previous process marked interrupted", count)
        return count

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every run; they end `interrupted` (resumable). Final states that cannot be recorded
        within `timeout` are left to the next start (which marks them interrupted)."""
        with self._lock:
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop(JobState.interrupted)
        deadline = time.monotonic() + timeout
        for run in runs:
            run.join(max(deadline - time.monotonic(), 0.1))
        for run in runs:
            run.recorder.abandon()

    # operations ---------------------------------------------------------------------------------
    def submit(self, spec: ReplaySpec) -> ReplayJob:
        job = ReplayJob.create(spec)
        self.repository.save(job)
        return self._start(job)

    def _start(self, job: ReplayJob) -> ReplayJob:
        run = ReplayRun(
            job, store=self.store, recorder=JobRecorder(self.repository, job), amqp_url=self.amqp_url,
            observer=self.observer, policy=self.policy, on_exit=self._forget,
        )
        with self._lock:
            if self._closed:
                run.recorder.abandon()
                raise JobStateConflict("the API is shutting down")
            self._runs[job.id] = run
        run.start()
        return run.view

    def _forget(self, run: ReplayRun) -> None:
        with self._lock:
            if self._runs.get(run.job.id) is run:
                del self._runs[run.job.id]

    def _live(self, job_id: str) -> ReplayRun | None:
        with self._lock:
            return self._runs.get(job_id)

    def get(self, job_id: str) -> ReplayJob:
        run = self._live(job_id)
        if run is not None:
            return run.view
        job = self.repository.get(job_id)
        if job is None:
            raise JobNotFound(f"no replay job {job_id!r}")
        return job

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        jobs = []
        for job in self.repository.list(state=state, limit=limit):
            run = self._live(job.id)
            jobs.append(run.view if run is not None else job)
        return [job for job in jobs if state is None or job.state == state]

    def wait(self, job_id: str, timeout: float | None = None) -> ReplayJob:
        run = self._live(job_id)
        if run is not None:
            run.join(timeout)
        return self.get(job_id)

    def cancel(self, job_id: str, *, wait: float = 15.0) -> ReplayJob:
        """Stop a job; answers with its final counts. JobStateConflict when it has ended."""
        run = self._live(job_id)
        if run is not None:
            if not run.stop(JobState.cancelled):
                raise JobStateConflict(f"replay {job_id} has already ended ({run.view.state.value})")
            run.join(wait)
            job = run.view
            if job.state.ended and job.state != JobState.cancelled:
                raise JobStateConflict(f"replay {job_id} has already ended ({job.state.value})")
            return job
        job = self.get(job_id)
        # An unfinished job with no run in this process (another process's): record the cancel.
        job.end(JobState.cancelled)
        self.repository.save(job)
        return job

    def resume(self, job_id: str) -> ReplayJob:
        if self._live(job_id) is not None:
            raise JobStateConflict(f"replay {job_id} is running")
        job = self.get(job_id)
        if not job.state.resumable:
            raise JobStateConflict(
                f"replay {job_id} is {job.state.value}; only interrupted, failed or cancelled jobs resume"
            )
        job.reopen()
        self.repository.save(job)
        return self._start(job)
