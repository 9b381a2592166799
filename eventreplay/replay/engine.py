"""The replay runner: each job runs in a thread of its own, with its own pika connection (pika is
not thread-safe), reading the shared store (thread-safe) as a stream so memory stays flat.

Publishing goes through ConfirmedPublisher (a window of unconfirmed messages, mandatory publishes).
Each message's token is its store position; the run advances `last_position` only over a
contiguous run of confirmed positions, so after a crash, a resume that starts after
`last_position` never publishes a confirmed event again (only the ones in flight may repeat).
"""
from __future__ import annotations

import collections
import hashlib
import logging
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Hashable, Iterator, Protocol

import pika

from eventreplay.broker import CONNECTION_ERRORS, PublishFailed, connect
from eventreplay.replay.job_repository import JobRepository
from eventreplay.replay.jobs import ACTIVE_STATES, JobState, ReplayJob, utcnow
from eventreplay.replay.pacing import pacer_for
from eventreplay.replay.publisher import BatchedConfirmedPublisher
from eventreplay.replay.spec import ReplaySpec
from eventreplay.replay.targets import TargetNotFound, TargetRefused, ensure_target
from eventreplay.store.base import EventStore, PersistenceError, StoredEvent

log = logging.getLogger(__name__)

REPLAY_ID_HEADER = "x-replay-id"  # the archive consumer skips messages carrying it
LATENCY_SAMPLE_EVERY = 8  # observe the confirm latency of one message in this many


class JobNotFound(Exception):
    pass


class JobStateConflict(Exception):
    """The job is in a state that does not allow the operation (HTTP 409)."""


class ReplayObserver(Protocol):
    def events_replayed(self, count: int) -> None: ...
    def confirm_latency(self, seconds: float) -> None: ...


class _NullObserver:
    def events_replayed(self, count: int) -> None:
        pass

    def confirm_latency(self, seconds: float) -> None:
        pass


def replay_properties(event: StoredEvent, *, replay_id: str, replayed_at: str) -> pika.BasicProperties:
    """The stored AMQP properties (message_id, type, content_type, timestamp, ... as the original
    carried them), persistent, plus the replay headers."""
    # user_id is left out: RabbitMQ refuses a user_id that is not the publishing connection's own.
    fields = {k: v for k, v in event.properties.items() if k not in ("headers", "user_id")}
    fields.setdefault("message_id", event.event_id)
    fields.setdefault("type", event.event_type)
    fields.setdefault("content_type", "application/json")
    fields.setdefault("timestamp", int(event.timestamp.timestamp()))
    fields["delivery_mode"] = pika.DeliveryMode.Persistent.value
    headers = dict(event.properties.get("headers") or {})
    headers[REPLAY_ID_HEADER] = replay_id
    headers["x-replayed-at"] = replayed_at
    headers["x-original-routing-key"] = event.routing_key
    headers["x-original-exchange"] = event.exchange
    if event.properties.get("user_id"):
        headers["x-original-user-id"] = event.properties["user_id"]
    return pika.BasicProperties(headers=headers, **fields)


class ReplayRun(threading.Thread):
    """One run of a job (its first, or a resume)."""

    def __init__(
        self,
        job: ReplayJob,
        *,
        store: EventStore,
        repository: JobRepository,
        amqp_url: str,
        observer: ReplayObserver,
        window: int,
        progress_interval: float,
        on_exit,
    ):
        super().__init__(name=f"replay-{job.id[:8]}", daemon=True)
        self.job = job
        self.store = store
        self.repository = repository
        self.amqp_url = amqp_url
        self.observer = observer
        self.window = window
        self.progress_interval = progress_interval
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._stop_state = JobState.cancelled
        # progress, updated by this thread only; copied into the job under the lock
        self.published = job.published = job.confirmed
        self.confirmed = job.confirmed
        self.first_position = job.first_position
        self.last_position = job.last_position
        self.last_event_timestamp = job.last_event_timestamp
        self._hasher = hashlib.sha256()
        # A resume rebuilds the hash of the earlier runs' events first; until then the job keeps
        # showing the digest it had.
        self._digest_ready = not job.confirmed
        self._outstanding: collections.OrderedDict[int, tuple[bytes, datetime, float]] = collections.OrderedDict()
        self._done: set[Hashable] = set()
        self._reported = 0
        self._next_persist = 0.0
        self._connection: pika.BlockingConnection | None = None

    # views for other threads ------------------------------------------------------------------
    def snapshot(self) -> ReplayJob:
        with self._lock:
            self._sync()
            return self.job.copy_of()

    def stop(self, state: JobState = JobState.cancelled) -> None:
        """Ask the run to end (checked before every event and during pacing waits)."""
        self._stop_state = state
        self._stop_event.set()

    # bookkeeping --------------------------------------------------------------------------------
    def _sync(self) -> None:
        job = self.job
        job.published = self.published
        job.confirmed = self.confirmed
        job.first_position = self.first_position
        job.last_position = self.last_position
        job.last_event_timestamp = self.last_event_timestamp
        if self._digest_ready:
            job.digest = self._hasher.hexdigest()

    def _update(self, **fields) -> ReplayJob:
        with self._lock:
            self._sync()
            for name, value in fields.items():
                setattr(self.job, name, value)
            return self.job.copy_of()

    def _persist(self, **fields) -> None:
        snapshot = self._update(**fields)
        self._report_replayed()
        try:
            self.repository.save(snapshot)
        except PersistenceError as error:
            if snapshot.state.ended:
                log.error("replay %s: could not save its final state: %s", snapshot.id, error)
            else:
                log.warning("replay %s: could not save progress: %s", snapshot.id, error)
        self._next_persist = time.monotonic() + self.progress_interval

    def _maybe_persist(self) -> None:
        if time.monotonic() >= self._next_persist:
            self._persist()

    def _report_replayed(self) -> None:
        new = self.confirmed - self._reported
        if new > 0:
            self.observer.events_replayed(new)
            self._reported = self.confirmed

    def _on_confirmed(self, tokens: list[Hashable]) -> None:
        # Called by ConfirmedPublisher in this thread. Confirms come in publish order in practice;
        # `_done` covers a single out-of-order one so that the contiguous prefix stays exact.
        self._done.update(tokens)
        outstanding, done = self._outstanding, self._done
        now = time.monotonic()
        while outstanding:
            position = next(iter(outstanding))
            if position not in done:
                break
            done.discard(position)
            body, timestamp, published_at = outstanding.popitem(last=False)[1]
            self._hasher.update(body)
            if self.first_position is None:
                self.first_position = position
            self.last_position = position
            self.last_event_timestamp = timestamp
            self.confirmed += 1
            if self.confirmed % LATENCY_SAMPLE_EVERY == 0:
                self.observer.confirm_latency(now - published_at)

    # the run --------------------------------------------------------------------------------------
    def run(self) -> None:
        job = self.job
        try:
            self._persist(
                state=JobState.running, started_at=utcnow(), ended_at=None, error=None, runs=job.runs + 1,
            )
            finished = self._replay(job.request)
            self._persist(state=JobState.completed if finished else self._stop_state, ended_at=utcnow())
        except BaseException as error:  # noqa: BLE001 - every failure ends the job with a reason
            self._persist(state=JobState.failed, ended_at=utcnow(), error=self._describe(error))
            if not isinstance(error, Exception):
                raise
        finally:
            self._close_connection()
            log.info("replay %s ended: %s", job.id, self.snapshot().state.value)
            self._on_exit(self)

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, (PublishFailed, TargetNotFound, TargetRefused)):
            return str(error)
        if isinstance(error, PersistenceError):
            return f"event store error: {error}"
        if isinstance(error, CONNECTION_ERRORS):
            return f"broker connection failed: {error.__class__.__name__} {error}".strip()
        if isinstance(error, TimeoutError):
            return f"broker did not confirm in time: {error}"
        log.exception("replay %s failed unexpectedly", self.job.id)
        return f"unexpected error: {error.__class__.__name__}: {error}"

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # noqa: BLE001 - the connection may already be broken
                pass

    def _rebuild_digest(self, spec: ReplaySpec, bound: int) -> None:
        """The confirmed events of earlier runs are the first `confirmed` matches: hash them again."""
        if not self.confirmed:
            return
        seen = 0
        for event in _closing(self.store.read(spec.query(limit=self.confirmed, up_to_position=bound))):
            self._hasher.update(event.body)
            seen += 1
        if seen != self.confirmed:
            log.warning("replay %s: %d confirmed events, %d found again", self.job.id, self.confirmed, seen)
        self._digest_ready = True

    def _replay(self, spec: ReplaySpec) -> bool:
        """Publish the job's events; True when all went out, False when stopped early."""
        if self.job.up_to_position is None:
            self._persist(up_to_position=self.store.last_position())
        bound = self.job.up_to_position
        self._rebuild_digest(spec, bound)
        remaining = None if spec.limit is None else max(spec.limit - self.confirmed, 0)
        query = spec.query(after_position=self.last_position, limit=remaining, up_to_position=bound)
        matched = self.confirmed + (self.store.count(query) if remaining != 0 else 0)
        self._persist(matched=matched)
        if remaining == 0:
            return True
        # Connect only now: the scans above may take long, and a connection nobody serves misses
        # its heartbeats.
        self._connection = connect(self.amqp_url, client_name=f"eventreplay-replay-{self.job.id[:8]}")
        ensure_target(self._connection, spec)

        if spec.target_queue is not None:
            exchange, fixed_key = "", spec.target_queue
        else:
            exchange, fixed_key = spec.target_exchange, spec.routing_key
        publisher = BatchedConfirmedPublisher(self._connection, window=self.window, on_confirmed=self._on_confirmed)
        pacer = pacer_for(spec.rate, spec.speed)
        replay_id, stop, outstanding = self.job.id, self._stop_event, self._outstanding
        stopped = False
        try:
            for count, event in enumerate(self._read_ahead(query), 1):
                if stop.is_set():
                    stopped = True
                    break
                moment = pacer.send_at(event.timestamp)
                if moment is not None:
                    publisher.flush()  # a paced message goes out now, not with the next batch
                    self._wait_until(moment)
                    if stop.is_set():
                        stopped = True
                        break
                properties = replay_properties(
                    event, replay_id=replay_id, replayed_at=datetime.now(timezone.utc).isoformat()
                )
                outstanding[event.position] = (event.body, event.timestamp, time.monotonic())
                publisher.publish(
                    exchange, fixed_key if fixed_key is not None else event.routing_key, event.body,
                    properties, token=event.position, mandatory=True,
                )
                self.published += 1
                if count % 32 == 0:
                    self._maybe_persist()
            publisher.wait_for_confirms(timeout=30)
        except PublishFailed:
            publisher.settle()  # what the broker took before the failure still counts as confirmed
            raise
        finally:
            publisher.close()
        return not stopped

    def _read_ahead(self, query) -> Iterator[StoredEvent]:
        """The matching events, read by a thread of their own into a bounded queue. While the store
        takes long to find the next match (a sparse type, a payload match filtered row by row), this
        thread keeps serving the broker connection (heartbeats, confirms) instead of waiting inside
        the store's read; the queue's bound keeps memory flat. Events travel in chunks (a queue
        operation per event costs more than publishing it), but a chunk goes at once whenever the
        publishing thread has nothing left to do."""
        feed: queue.Queue = queue.Queue(maxsize=READ_AHEAD // READ_CHUNK)
        halt = threading.Event()

        def offer(item) -> bool:
            while not halt.is_set():
                try:
                    feed.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                chunk: list[StoredEvent] = []
                for event in _closing(self.store.read(query)):
                    chunk.append(event)
                    if len(chunk) >= READ_CHUNK or feed.empty():
                        if not offer(chunk):
                            return
                        chunk = []
                if chunk and not offer(chunk):
                    return
                offer(_END_OF_READ)
            except BaseException as error:  # noqa: BLE001 - handed over to the publishing thread
                offer(error)

        reader = threading.Thread(target=read, name=f"{self.name}-read", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = feed.get(timeout=0.5)
                except queue.Empty:
                    self._connection.process_data_events(time_limit=0)
                    self._maybe_persist()
                    continue
                if item is _END_OF_READ:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            halt.set()
            reader.join(timeout=10)

    def _wait_until(self, moment: float) -> None:
        """Wait for the pacing schedule while serving the connection (confirms, heartbeats), and
        return early on stop."""
        connection = self._connection
        while not self._stop_event.is_set():
            remaining = moment - time.monotonic()
            if remaining <= 0:
                return
            if remaining < 0.002:
                time.sleep(remaining)
                self._maybe_persist()
                return
            connection.process_data_events(time_limit=min(remaining, 0.05))
            self._maybe_persist()


_END_OF_READ = object()
READ_AHEAD = 2048  # events read ahead of publishing at most
READ_CHUNK = 256


def _closing(iterator: Iterator[StoredEvent]) -> Iterator[StoredEvent]:
    """Iterate and always close the store's stream (ends a server-side read early on cancel)."""
    try:
        yield from iterator
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


class ReplayEngine:
    """Starts, tracks, cancels and resumes replay runs. Safe to call from any thread."""

    def __init__(
        self,
        store: EventStore,
        repository: JobRepository,
        amqp_url: str,
        *,
        observer: ReplayObserver | None = None,
        window: int = 1000,
        progress_interval: float = 0.5,
    ):
        self.store = store
        self.repository = repository
        self.amqp_url = amqp_url
        self.observer = observer or _NullObserver()
        self.window = window
        self.progress_interval = progress_interval
        self._lock = threading.Lock()
        self._runs: dict[str, ReplayRun] = {}
        self._closed = False

    # lifecycle ------------------------------------------------------------------------------------
    def interrupt_leftovers(self) -> int:
        """Jobs left pending/running by a previous process can no longer progress: mark them
        `interrupted` (resumable)."""
        count = 0
        for state in ACTIVE_STATES:
            for job in self.repository.list(state=state):
                with self._lock:
                    if job.id in self._runs:
                        continue
                job.state = JobState.interrupted
                job.ended_at = utcnow()
                job.error = "the API process stopped during the replay; resume it to continue"
                self.repository.save(job)
                count += 1
        if count:
            log.warning("%d replay job(s) of a previous process marked interrupted", count)
        return count

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every run; they end `interrupted` (resumable), with their progress saved."""
        with self._lock:
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop(JobState.interrupted)
        deadline = time.monotonic() + timeout
        for run in runs:
            run.join(max(deadline - time.monotonic(), 0.1))

    # operations ---------------------------------------------------------------------------------
    def submit(self, spec: ReplaySpec) -> ReplayJob:
        job = ReplayJob.create(spec)
        self.repository.save(job)
        return self._start(job)

    def _start(self, job: ReplayJob) -> ReplayJob:
        run = ReplayRun(
            job, store=self.store, repository=self.repository, amqp_url=self.amqp_url,
            observer=self.observer, window=self.window, progress_interval=self.progress_interval,
            on_exit=self._forget,
        )
        with self._lock:
            if self._closed:
                raise JobStateConflict("the API is shutting down")
            if job.id in self._runs:
                raise JobStateConflict(f"replay {job.id} is already running")
            self._runs[job.id] = run
        snapshot = run.snapshot()
        run.start()
        return snapshot

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
            return run.snapshot()
        job = self.repository.get(job_id)
        if job is None:
            raise JobNotFound(f"no replay job {job_id!r}")
        return job

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        jobs = self.repository.list(state=state, limit=limit)
        live = []
        for job in jobs:
            run = self._live(job.id)
            live.append(run.snapshot() if run is not None else job)
        return [job for job in live if state is None or job.state == state]

    def wait(self, job_id: str, timeout: float | None = None) -> ReplayJob:
        run = self._live(job_id)
        if run is not None:
            run.join(timeout)
        return self.get(job_id)

    def cancel(self, job_id: str, *, wait: float = 15.0) -> ReplayJob:
        run = self._live(job_id)
        if run is not None:
            run.stop(JobState.cancelled)
            run.join(wait)
            return self.get(job_id)
        job = self.get(job_id)
        if job.state.ended:
            raise JobStateConflict(f"replay {job_id} has already ended ({job.state.value})")
        # An active job with no run in this process (another process's): record the cancel.
        job.state, job.ended_at = JobState.cancelled, utcnow()
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
        job.state = JobState.pending
        job.error = None
        job.ended_at = None
        self.repository.save(job)
        return self._start(job)
