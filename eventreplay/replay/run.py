"""One run of a replay job (its first, or a resume): read the matching events, publish them with
confirms, record progress, ride out broker and store faults.

Threads, and what each one touches:
- the run thread (`ReplayRun.run`) owns everything below: the broker connection, the
  ConfirmedPublisher, the ReplayConfirms tracker, the pacer and the job object. It is the only thread that
  changes the job; after each change it replaces `view`, an immutable copy.
- the read-ahead thread (read_ahead.py) only reads the store and hands events over a bounded queue.
- the recorder thread (recorder.py) only saves the snapshots the run thread hands it.
- API threads only read `view` and call `stop()` (an Event and a lock-guarded flag).

Guarantees (docs/api.md "Guarantees"):
- Resume bound. The run never has more than `resend_bound` = window + checkpoint_every events sent
  after the last progress the recorder saved: it waits before publishing more. So after a crash at
  any moment a resume (which continues after the recorded `last_position`) sends at most that many
  events a second time.
- Faults. A lost broker connection, a broker that withholds confirms, or a store that is briefly
  unavailable do not end the job: the run closes what it had, waits with a growing delay (the job
  shows `reconnecting`), and continues after the last contiguously confirmed event, re-sending at
  most the `window` events that were in flight. It fails only after `give_up_after` seconds without
  progress. A nack, an unroutable event or a missing target end it at once (retrying cannot help).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

import pika

from eventreplay.broker import CONNECTION_ERRORS, ConfirmedPublisher, PublishFailed, close_quietly, connect
from eventreplay.replay.confirms import ReplayConfirms
from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.replay.messages import replay_properties
from eventreplay.replay.pacing import pacer_for
from eventreplay.replay.read_ahead import closing, read_ahead
from eventreplay.replay.recorder import JobRecorder
from eventreplay.replay.targets import TargetNotFound, TargetRefused, ensure_target
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.store.base import EventStore, PersistenceError, StoreUnavailable

log = logging.getLogger(__name__)

# Faults a run waits out; everything else ends it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, StoreUnavailable, TimeoutError)
VIEW_EVERY = 0.1  # seconds between refreshes of the view the API reads
TICK_EVERY = 32  # publishes between looks at the clock


@dataclass(frozen=True)
class RunPolicy:
    window: int = 1000  # messages in flight (unconfirmed) at most
    checkpoint_every: int = 1000  # confirmed events the run may get ahead of its recorded progress
    checkpoint_interval: float = 0.5  # seconds between progress records while events are confirmed
    give_up_after: float = 300.0  # seconds of faults without progress before the job fails
    confirm_timeout: float = 30.0  # a broker silent this long counts as a fault
    first_delay: float = 0.5  # reconnect delays double from here ...
    longest_delay: float = 10.0  # ... up to here

    @property
    def resend_bound(self) -> int:
        """At most this many events are sent again by a resume after a crash."""
        return self.window + self.checkpoint_every


class ReplayObserver(Protocol):
    def events_replayed(self, count: int) -> None: ...
    def confirm_latency(self, seconds: float) -> None: ...


class _Stopped(Exception):
    """stop() was called: end the run now (cancelled or interrupted)."""


class GaveUp(Exception):
    """Faults lasted longer than the give-up time."""


class ReplayRun(threading.Thread):
    def __init__(self, job: ReplayJob, *, store: EventStore, recorder: JobRecorder, amqp_url: str,
                 observer: ReplayObserver, policy: RunPolicy, on_exit: Callable[["ReplayRun"], None]):
        super().__init__(name=f"replay-{job.id[:8]}", daemon=True)
        self.job = job
        self.store = store
        self.recorder = recorder
        self.amqp_url = amqp_url
        self.observer = observer
        self.policy = policy
        self._on_exit = on_exit
        self.view = job.copy_of()  # what API threads read
        self._stop_requested = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_state = JobState.cancelled
        self._ending = False  # the run has decided how it ends: stop() comes too late
        self._tracker: ReplayConfirms | None = None  # once the earlier runs' digest is rebuilt
        self._connection: pika.BlockingConnection | None = None
        self._publisher: ConfirmedPublisher | None = None
        self._reported = job.confirmed  # confirmed events already counted in the metrics
        self._requested = job.confirmed  # `confirmed` of the last snapshot handed to the recorder
        self._next_checkpoint = 0.0
        self._next_view = 0.0
        self._retry = RetryPolicy(interrupt=self._stop_requested, first=policy.first_delay,
                                  longest=policy.longest_delay, give_up_after=policy.give_up_after)
        self._progress_mark = job.confirmed  # confirmed when the retry policy last saw progress

    # for API threads --------------------------------------------------------------------------
    def stop(self, state: JobState = JobState.cancelled) -> bool:
        """Ask the run to end as `state` (checked before every event and in every wait). False
        when it is already ending by itself."""
        with self._stop_lock:
            if self._ending:
                return False
            self._stop_state = state
            self._stop_requested.set()
            return True

    # the job, changed by this thread only -------------------------------------------------------
    def _sync(self) -> None:
        tracker, job = self._tracker, self.job
        if tracker is not None:
            job.confirmed = tracker.confirmed
            job.published = tracker.confirmed + tracker.in_flight
            job.first_position = tracker.first_position
            job.last_position = tracker.last_position
            job.last_event_timestamp = tracker.last_timestamp
            job.digest = tracker.digest

    def _refresh(self) -> ReplayJob:
        self._sync()
        self.view = snapshot = self.job.copy_of()
        self._next_view = time.monotonic() + VIEW_EVERY
        return snapshot

    def _change(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self.job, name, value)
        self._refresh()

    def _checkpoint(self) -> None:
        """Hand the recorder the current progress (it saves the newest it has)."""
        snapshot = self._refresh()
        self.recorder.record(snapshot)
        self._requested = snapshot.confirmed
        self._next_checkpoint = time.monotonic() + self.policy.checkpoint_interval
        self._report_metrics()

    def _tick(self) -> None:
        """Called often by this thread: a checkpoint when enough was confirmed or time passed, and
        a fresh view for the API."""
        tracker = self._tracker
        now = time.monotonic()
        moved = tracker is not None and tracker.confirmed != self._requested
        if moved and (tracker.confirmed - self._requested >= max(self.policy.checkpoint_every // 2, 1)
                      or now >= self._next_checkpoint):
            self._checkpoint()
        elif now >= self._next_view:
            self._refresh()

    def _report_metrics(self) -> None:
        tracker = self._tracker
        if tracker is None:
            return
        if tracker.confirmed > self._reported:
            self.observer.events_replayed(tracker.confirmed - self._reported)
            self._reported = tracker.confirmed
        for seconds in tracker.take_latencies():
            self.observer.confirm_latency(seconds)

    # the run ------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.job.start()
            self._checkpoint()
            end, error = self._replay(), None
        except GaveUp as gave_up:
            end, error = JobState.failed, str(gave_up)
        except BaseException as failure:  # noqa: BLE001 - every failure ends the job with a reason
            end, error = JobState.failed, self._describe(failure)
            if not isinstance(failure, Exception):
                raise
        finally:
            self._disconnect()
        with self._stop_lock:
            self._ending = True
        self.job.end(end, error=error)
        final = self._refresh()
        self._report_metrics()
        if not self.recorder.finish(final):
            log.error("replay %s ended %s but its final state could not be recorded", self.job.id, end.value)
        log.info("replay %s ended: %s (%d of %d events confirmed)", self.job.id, end.value, final.confirmed,
                 final.matched)
        self._on_exit(self)

    def _replay(self) -> JobState:
        """Publish the job's events; the state the job ends in (completed, or how it was stopped)."""
        try:
            self._ride_out(self._prepare)
            self._ride_out(self._publish_remaining)
        except _Stopped:
            if self._publisher is not None:
                self._publisher.settle()  # what is in flight still counts once confirmed
            with self._stop_lock:
                self._ending = True
                return self._stop_state
        except PublishFailed:
            self._publisher.settle()  # what the broker took before the failure still counts
            raise
        with self._stop_lock:
            self._ending = True
        return JobState.completed

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, (PublishFailed, TargetNotFound, TargetRefused)):
            return str(error)
        if isinstance(error, PersistenceError):
            return f"event store error: {error}"
        log.error("replay %s failed unexpectedly", self.job.id, exc_info=error)
        return f"unexpected error: {error.__class__.__name__}: {error}"

    # riding out faults ----------------------------------------------------------------------------
    def _ride_out(self, step: Callable[[], None]) -> None:
        """Run `step` until it succeeds; a transient fault closes what it used, waits (growing
        delays, interrupted by stop) and tries again, until `give_up_after` seconds passed without
        progress."""
        try:
            for attempt in self._retry.retrying(TRANSIENT_ERRORS, on_fault=self._note_fault):
                with attempt:
                    self._attempt(step)
        except Interrupted:
            raise _Stopped from None
        except TRANSIENT_ERRORS as error:
            raise GaveUp(f"gave up after {self.policy.give_up_after:.0f} s of faults without progress; "
                         f"last: {self._fault_text(error)}") from error
        self._retry.progressed()
        self._recovered()

    def _recovered(self) -> None:
        if self.job.reconnecting is not None:
            log.info("replay %s: continuing after the fault", self.job.id)
            self._change(reconnecting=None)

    def _attempt(self, step: Callable[[], None]) -> None:
        self._check_stop()
        try:
            step()
        except TRANSIENT_ERRORS:
            if self._publisher is not None:
                self._publisher.settle(timeout=2.0)  # a store fault leaves the connection working
            self._disconnect()
            confirmed = self._tracker.confirmed if self._tracker is not None else 0
            if confirmed > self._progress_mark:  # the give-up clock and the delays start again
                self._retry.progressed()
                self._progress_mark = confirmed
            raise

    def _note_fault(self, error: BaseException, delay: float) -> None:
        gives_up_at = datetime.now(timezone.utc) + timedelta(seconds=self._retry.gives_up_in())
        text = self._fault_text(error)
        log.warning("replay %s: %s; retrying in %.1f s", self.job.id, text, delay)
        self._change(reconnecting=f"{text}; retrying in {delay:.1f} s (gives up at "
                                  f"{gives_up_at.isoformat(timespec='seconds')} without progress)")

    @staticmethod
    def _fault_text(error: BaseException) -> str:
        if isinstance(error, StoreUnavailable):
            return f"event store unavailable: {error}"
        if isinstance(error, TimeoutError):
            return f"broker did not confirm in time: {error}"
        return f"broker connection lost: {one_line(error)}"

    def _check_stop(self) -> None:
        if self._stop_requested.is_set():
            raise _Stopped

    # the steps ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Fix the job's content (up_to_position), rebuild the earlier runs' digest, count."""
        job, spec = self.job, self.job.request
        if job.up_to_position is None:
            self._change(up_to_position=self.store.last_position())
        if self._tracker is None:
            self._tracker = ReplayConfirms(
                confirmed=job.confirmed, first_position=job.first_position, last_position=job.last_position,
                last_timestamp=job.last_event_timestamp, digest=self._rebuilt_digest(),
            )
        remaining = self._remaining()
        query = spec.query(after_position=job.last_position, limit=remaining, up_to_position=job.up_to_position)
        self._change(matched=job.confirmed + (self.store.count(query) if remaining != 0 else 0))

    def _rebuilt_digest(self):
        """The confirmed events of earlier runs are the first `confirmed` matches: hash them again."""
        import hashlib

        hasher = hashlib.sha256()
        job = self.job
        if job.confirmed:
            query = job.request.query(limit=job.confirmed, up_to_position=job.up_to_position)
            seen = 0
            for event in closing(self.store.read(query)):
                hasher.update(event.body)
                seen += 1
            if seen != job.confirmed:
                log.warning("replay %s: %d confirmed events, %d found again", job.id, job.confirmed, seen)
        return hasher

    def _remaining(self) -> int | None:
        limit = self.job.request.limit
        return None if limit is None else max(limit - self._tracker.confirmed, 0)

    def _publish_remaining(self) -> None:
        """One attempt: connect, publish every event after the last confirmed one, wait for the
        confirms."""
        job, spec, tracker = self.job, self.job.request, self._tracker
        remaining = self._remaining()
        if remaining == 0:
            return
        self._connection = connect(self.amqp_url, client_name=f"eventreplay-replay-{job.id[:8]}")
        ensure_target(self._connection, spec)
        publisher = self._publisher = ConfirmedPublisher(
            self._connection, tracker, window=self.policy.window, confirm_timeout=self.policy.confirm_timeout)
        self._recovered()
        if spec.target_queue is not None:
            exchange, fixed_key = "", spec.target_queue
        else:
            exchange, fixed_key = spec.target_exchange, spec.routing_key
        pacer = pacer_for(spec.rate, spec.speed)
        query = spec.query(after_position=tracker.last_position, limit=remaining, up_to_position=job.up_to_position)
        events = read_ahead(self.store, query, idle=self._idle, name=f"{self.name}-read")
        try:
            for count, event in enumerate(events, 1):
                self._check_stop()
                moment = pacer.send_at(event.timestamp)
                if moment is not None:
                    publisher.flush()  # a paced message goes out now, not with the next batch
                    self._wait_until(moment)
                if tracker.confirmed + tracker.in_flight - self.recorder.recorded_confirmed >= self.policy.resend_bound:
                    self._wait_for_recorded_progress()
                properties = replay_properties(event, replay_id=job.id)
                publisher.publish(exchange, fixed_key if fixed_key is not None else event.routing_key, event.body,
                                  properties, item=event)
                if count % TICK_EVERY == 0:
                    self._tick()
            publisher.wait_for_confirms()
        finally:
            events.close()
        self._checkpoint()

    def _idle(self) -> None:
        """The store keeps the run waiting: serve the broker connection meanwhile."""
        self._check_stop()
        if self._publisher is not None:
            self._publisher.flush()
        self._tick()

    def _wait_until(self, moment: float) -> None:
        """Wait for the pacing schedule while serving the connection (confirms, heartbeats)."""
        while True:
            self._check_stop()
            remaining = moment - time.monotonic()
            if remaining <= 0:
                return
            if remaining < 0.002:
                time.sleep(remaining)
            else:
                self._publisher.serve(min(remaining, 0.05))
            self._tick()

    def _wait_for_recorded_progress(self) -> None:
        """The resume bound: wait until the recorder has saved enough progress to publish more."""
        tracker, recorder, bound = self._tracker, self.recorder, self.policy.resend_bound
        self._publisher.flush()
        self._checkpoint()
        started = time.monotonic()
        while tracker.confirmed + tracker.in_flight - recorder.recorded_confirmed >= bound:
            self._check_stop()
            self._publisher.serve(0.01)
            self._tick()
            waited = time.monotonic() - started
            if recorder.error and waited > 1.0 and self.job.reconnecting is None:
                self._change(reconnecting=f"waiting to record progress: {recorder.error}")
            if waited > self.policy.give_up_after:
                raise GaveUp(f"could not record progress for {self.policy.give_up_after:.0f} s: {recorder.error}")
        if self.job.reconnecting is not None:
            self._change(reconnecting=None)

    def _disconnect(self) -> None:
        publisher, connection = self._publisher, self._connection
        self._publisher = self._connection = None
        if publisher is not None:
            publisher.close()
        if self._tracker is not None:
            self._tracker.connection_lost()  # what was in flight is sent again, after last_position
        close_quietly(connection)
