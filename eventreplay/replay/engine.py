"""The replay engine: starts, tracks, cancels and resumes replay runs (run.py), one thread each.
Safe to call from any thread.

A run stays known here until its final state is recorded: until then `get` answers from the run's
in-memory job, which is the truth while the store cannot take it (a lock, a full disk), so a job
never seems to go back to an earlier state.

Several engines (API instances) may share one job repository (leases.py): each job has one owner;
`watch()` takes over the jobs whose owner stopped renewing its lease and resumes them; a cancel or a
resume works whichever instance receives it.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from eventreplay.replay.job_records import JobChanged, JobRepository
from eventreplay.replay.jobs import UNFINISHED_STATES, JobNotFound, JobState, JobStateConflict, ReplayJob, utcnow
from eventreplay.replay.leases import LeasePolicy, instance_name
from eventreplay.replay.recorder import JobRecorder
from eventreplay.replay.progress import ReplayObserver
from eventreplay.replay.policy import RunPolicy
from eventreplay.replay.run import ReplayRun
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store.base import EventStore, PersistenceError

log = logging.getLogger(__name__)

__all__ = ["JobNotFound", "JobStateConflict", "ReplayEngine", "RunPolicy"]


class _NoMetrics:
    def events_replayed(self, count: int) -> None:
        pass

    def confirm_latency(self, seconds: float) -> None:
        pass


class ReplayEngine:
    def __init__(self, store: EventStore, repository: JobRepository, amqp_url: str, *,
                 observer: ReplayObserver | None = None, policy: RunPolicy = RunPolicy(),
                 owner: str | None = None, lease: LeasePolicy = LeasePolicy()):
        self.store = store
        self.repository = repository
        self.amqp_url = amqp_url
        self.observer = observer or _NoMetrics()
        self.policy = policy
        self.owner = owner or instance_name()
        self.lease = lease
        self._lock = threading.Lock()
        self._runs: dict[str, ReplayRun] = {}
        self._closed = False
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        # job id -> (revision, when this instance first saw it): a record that does not change for
        # a lease, by this instance's own clock, has no live owner
        self._seen: dict[str, tuple[int, float]] = {}

    # lifecycle ------------------------------------------------------------------------------------
    def watch(self) -> None:
        """Start taking over the jobs other instances (or this one's predecessor) left behind."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="lease-watcher", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.lease.renew_every):
            try:
                self.take_over_orphans()
            except PersistenceError as error:
                log.warning("could not look for replay jobs left without an owner (%s); trying again", error)
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("looking for replay jobs left without an owner failed")

    def take_over_orphans(self) -> list[str]:
        """Claim and resume every unfinished job whose record has not changed for a whole lease."""
        now, taken, unfinished = time.monotonic(), [], set()
        for state in UNFINISHED_STATES:
            for job in self.repository.list(state=state):
                unfinished.add(job.id)
                if self._live(job.id) is not None:
                    continue
                seen = self._seen.get(job.id)
                if seen is None or seen[0] != job.revision:
                    self._seen[job.id] = (job.revision, now)
                elif now - seen[1] >= self.lease.duration and self._claim(job):
                    taken.append(job.id)
        self._seen = {job_id: seen for job_id, seen in self._seen.items() if job_id in unfinished}
        return taken

    def _claim(self, job: ReplayJob) -> bool:
        previous = job.owner or "an earlier version"
        job.take_over(self.owner)
        if job.cancel_requested:
            job.end(JobState.cancelled)
        try:
            self.repository.save(job)
        except JobChanged:
            return False  # another instance was quicker, or the owner came back
        if job.state.ended:
            log.info("replay %s: cancelled as asked (its instance %s had stopped)", job.id, previous)
            return True
        log.warning("replay %s: taken over from %s, which stopped renewing its lease; resuming after "
                    "event %d", job.id, previous, job.confirmed)
        try:
            self._start(job)
        except JobStateConflict:
            return False
        return True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every run; they end `interrupted` (resumable). Final states that cannot be recorded
        within `timeout` are left behind: another instance (or the next start) takes those jobs
        over when their lease expires."""
        self._stopping.set()
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
        job.owner, job.heartbeat_at = self.owner, utcnow()
        self.repository.save(job)
        return self._start(job)

    def _start(self, job: ReplayJob) -> ReplayJob:
        """Run a job this instance has just saved as its owner."""
        recorder = JobRecorder(self.repository, job, owner=self.owner, lease=self.lease)
        run = ReplayRun(
            job, store=self.store, recorder=recorder, amqp_url=self.amqp_url,
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
        """Stop a job; answers with its final counts (a job run by another instance: its state
        once that instance has ended it, within `wait`). JobStateConflict when it has ended."""
        run = self._live(job_id)
        if run is not None:
            if not run.stop(JobState.cancelled):
                raise JobStateConflict(f"replay {job_id} has already ended ({run.view.state.value})")
            run.join(wait)
            job = run.view
            if job.state.ended and job.state != JobState.cancelled:
                raise JobStateConflict(f"replay {job_id} has already ended ({job.state.value})")
            return job
        job = self._change(job_id, self._ask_cancel)
        # Its owner ends it at its next heartbeat; an owner that stopped: the instance taking it over.
        deadline = time.monotonic() + wait
        while not job.state.ended and time.monotonic() < deadline:
            time.sleep(0.1)
            job = self.get(job_id)
        if job.state.ended and job.state != JobState.cancelled:
            raise JobStateConflict(f"replay {job_id} has already ended ({job.state.value})")
        return job

    @staticmethod
    def _ask_cancel(job: ReplayJob) -> None:
        if job.state.ended:
            raise JobStateConflict(f"replay {job.id} has already ended ({job.state.value})")
        job.cancel_requested = True

    def resume(self, job_id: str) -> ReplayJob:
        """Start a stopped job again after its last confirmed event. A job whose owner's lease
        expired (heartbeat older than a lease) is taken over here at once."""
        if self._live(job_id) is not None:
            raise JobStateConflict(f"replay {job_id} is running")
        job = self._change(job_id, self._reopen)
        return self._start(job)

    def _reopen(self, job: ReplayJob) -> None:
        if job.state.resumable:
            job.reopen()
            job.owner = self.owner
            return
        if not job.state.ended:
            silent = utcnow() - job.heartbeat_at if job.heartbeat_at else None
            if silent is not None and silent < timedelta(seconds=self.lease.duration):
                raise JobStateConflict(f"replay {job.id} is {job.state.value} on instance {job.owner} "
                                       f"(its last heartbeat {silent.total_seconds():.0f} s ago)")
            job.take_over(self.owner)
            return
        raise JobStateConflict(
            f"replay {job.id} is {job.state.value}; only interrupted, failed or cancelled jobs resume")

    def _change(self, job_id: str, change) -> ReplayJob:
        """Read the job, change it, save it over what was read; again if another instance saved
        it meanwhile."""
        for _ in range(20):
            job = self.repository.get(job_id)
            if job is None:
                raise JobNotFound(f"no replay job {job_id!r}")
            change(job)
            try:
                self.repository.save(job)
                return job
            except JobChanged:
                continue
        raise JobStateConflict(f"replay {job_id} keeps changing; try again")
