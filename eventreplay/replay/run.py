"""One run of a replay job (its first, or a resume): read the matching events, publish them with
confirms, record progress, ride out broker and store faults.

Threads, and what each one touches:
- the run thread (`ReplayRun.run`) owns everything below: the broker connection, the
  ConfirmedPublisher, the ReplayConfirms tracker, the pacer, and the job with its RunProgress
  (progress.py). It is the only thread that changes the job; after each change it replaces `view`,
  an immutable copy.
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
from datetime import datetime, timedelta, timezone
from typing import Callable

import pika

from eventreplay.broker import (
    CONNECTION_ERRORS, ConfirmedPublisher, PublishFailed, close_quietly, connect, connected_node,
)
from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.replay.messages import MillisecondClock, replay_properties
from eventreplay.replay.pacing import pacer_for
from eventreplay.replay.policy import RunPolicy
from eventreplay.replay.progress import ReplayObserver, RunProgress
from eventreplay.replay.read_ahead import read_ahead
from eventreplay.replay.recorder import JobRecorder
from eventreplay.replay.preparing import prepare, remaining
from eventreplay.replay.targets import TargetNotFound, TargetRefused, ensure_target
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.store.base import EventStore, PersistenceError, StoreUnavailable

log = logging.getLogger(__name__)

# Faults a run waits out; everything else ends it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, StoreUnavailable, TimeoutError)
TICK_EVERY = 32  # publishes between looks at the clock


class _Stopped(Exception):
    """stop() was called: end the run now (cancelled or interrupted), or the job was taken over."""


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
        self.progress = RunProgress(job, recorder, observer, checkpoint_every=policy.checkpoint_every,
                                    checkpoint_interval=policy.checkpoint_interval)
        self._stop_requested = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_state: JobState | None = JobState.cancelled  # None: taken over, end without a word
        self._ending = False  # the run has decided how it ends: stop() comes too late
        recorder.on_cancel = lambda: self.stop(JobState.cancelled)
        recorder.on_lost = self._lose
        self._connection: pika.BlockingConnection | None = None
        self._publisher: ConfirmedPublisher | None = None
        self._retry = RetryPolicy(interrupt=self._stop_requested, first=policy.first_delay,
                                  longest=policy.longest_delay, give_up_after=policy.give_up_after)
        self._progress_mark = job.confirmed  # confirmed when the retry policy last saw progress

    # for API threads --------------------------------------------------------------------------
    @property
    def view(self) -> ReplayJob:
        """The job as it is now (an immutable copy the run thread replaces)."""
        return self.progress.view

    def stop(self, state: JobState = JobState.cancelled) -> bool:
        """Ask the run to end as `state` (checked before every event and in every wait). False
        when it is already ending by itself."""
        with self._stop_lock:
            if self._ending:
                return False
            self._stop_state = state
            self._stop_requested.set()
            return True

    def _lose(self) -> None:
        """Another instance owns the job now (this one's lease expired): stop sending at once."""
        with self._stop_lock:
            if not self._ending:
                self._stop_state = None
                self._stop_requested.set()

    # the run ------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.job.start()
            self.progress.checkpoint()
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
        if end is None or self.recorder.lost.is_set():
            log.info("replay %s: this run stops: another instance took the job over", self.job.id)
            self.recorder.abandon()
            self._on_exit(self)
            return
        if end == JobState.completed and self.job.matched is None:
            self.job.matched = self.progress.tracker.confirmed  # the one pass has counted them
        self.job.end(end, error=error)
        final = self.progress.refresh()
        self.progress.report_metrics()
        if not self.recorder.finish(final):
            log.error("replay %s ended %s but its final state could not be recorded", self.job.id, end.value)
        log.info("replay %s ended: %s (%d of %d events confirmed)", self.job.id, end.value, final.confirmed,
                 final.matched)
        self._on_exit(self)

    def _replay(self) -> JobState | None:
        """Publish the job's events; the state the job ends in (completed, or how it was stopped;
        None when it was taken over)."""
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
            where = f" (RabbitMQ at {connected_node(self._connection)})" if self._connection is not None else ""
            log.info("replay %s: continuing after the fault%s", self.job.id, where)
            self.progress.change(reconnecting=None)

    def _attempt(self, step: Callable[[], None]) -> None:
        self._check_stop()
        try:
            step()
        except TRANSIENT_ERRORS:
            if self._publisher is not None:
                self._publisher.settle(timeout=2.0)  # a store fault leaves the connection working
            self._disconnect()
            confirmed = self.progress.tracker.confirmed if self.progress.tracker is not None else 0
            if confirmed > self._progress_mark:  # the give-up clock and the delays start again
                self._retry.progressed()
                self._progress_mark = confirmed
            raise

    def _note_fault(self, error: BaseException, delay: float) -> None:
        gives_up_at = datetime.now(timezone.utc) + timedelta(seconds=self._retry.gives_up_in())
        text = self._fault_text(error)
        log.warning("replay %s: %s; retrying in %.1f s", self.job.id, text, delay)
        self.progress.change(reconnecting=f"{text}; retrying in {delay:.1f} s (gives up at "
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
        prepare(self.job, self.store, self.progress)

    def _remaining(self) -> int | None:
        return remaining(self.job, self.progress.tracker)

    def _publish_remaining(self) -> None:
        """One attempt: connect, publish every event after the last confirmed one, wait for the
        confirms."""
        job, spec, tracker = self.job, self.job.request, self.progress.tracker
        remaining = self._remaining()
        if remaining == 0:
            return
        self._connection = connect(self.amqp_url, client_name=f"eventreplay-replay-{job.id[:8]}")
        ensure_target(self._connection, spec, queue_type=self.policy.queue_type)
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
        clock = MillisecondClock()
        try:
            for count, event in enumerate(events, 1):
                self._check_stop()
                moment = pacer.send_at(event.timestamp)
                if moment is not None:
                    publisher.flush()  # a paced message goes out now, not with the next batch
                    self._wait_until(moment)
                if self.progress.unrecorded() >= self.policy.resend_bound:
                    self._wait_for_recorded_progress()
                if not self.recorder.lease_fresh():
                    self._wait_for_lease()
                properties = replay_properties(event, replay_id=job.id, replayed_at=clock.now())
                publisher.publish(exchange, fixed_key if fixed_key is not None else event.routing_key, event.body,
                                  properties, item=event)
                if count % TICK_EVERY == 0:
                    self.progress.tick()
            publisher.wait_for_confirms()
        finally:
            events.close()
        self.progress.checkpoint()

    def _idle(self) -> None:
        """The store keeps the run waiting: serve the broker connection meanwhile."""
        self._check_stop()
        if self._publisher is not None:
            self._publisher.flush()
        self.progress.tick()

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
            self.progress.tick()

    def _wait_for_recorded_progress(self) -> None:
        """The resume bound: wait until the recorder has saved enough progress to publish more."""
        recorder, bound = self.recorder, self.policy.resend_bound
        self._publisher.flush()
        self.progress.checkpoint()
        started = time.monotonic()
        while self.progress.unrecorded() >= bound:
            self._check_stop()
            self._publisher.serve(0.01)
            self.progress.tick()
            waited = time.monotonic() - started
            if recorder.error and waited > 1.0 and self.job.reconnecting is None:
                self.progress.change(reconnecting=f"waiting to record progress: {recorder.error}")
            if waited > self.policy.give_up_after:
                raise GaveUp(f"could not record progress for {self.policy.give_up_after:.0f} s: {recorder.error}")
        if self.job.reconnecting is not None:
            self.progress.change(reconnecting=None)

    def _wait_for_lease(self) -> None:
        """The lease: send nothing more until the recorder has renewed it (or learnt that the job
        was taken over, which stops the run)."""
        self._publisher.flush()
        started = time.monotonic()
        while not self.recorder.lease_fresh():
            self._check_stop()
            self._publisher.serve(0.02)
            self.progress.tick()
            waited = time.monotonic() - started
            if waited > 1.0 and self.job.reconnecting is None:
                self.progress.change(reconnecting=f"waiting to renew the job's lease: {self.recorder.error}")
            if waited > self.policy.give_up_after:
                raise GaveUp(f"could not renew the job's lease for {self.policy.give_up_after:.0f} s: "
                             f"{self.recorder.error}")
        if self.job.reconnecting is not None:
            self.progress.change(reconnecting=None)

    def _disconnect(self) -> None:
        publisher, connection = self._publisher, self._connection
        self._publisher = self._connection = None
        if publisher is not None:
            publisher.close()
        if self.progress.tracker is not None:
            self.progress.tracker.connection_lost()  # what was in flight is sent again, after last_position
        close_quietly(connection)
