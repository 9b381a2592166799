"""A running job's progress as others see it: the view API threads read, the snapshots the recorder
saves (checkpoints), and the metrics. Called by the run thread only (run.py says which thread
touches what); API threads read `view`, an immutable copy replaced whole.
"""
from __future__ import annotations

import time
from typing import Protocol

from eventreplay.replay.confirms import ReplayConfirms
from eventreplay.replay.jobs import ReplayJob
from eventreplay.replay.recorder import JobRecorder

VIEW_EVERY = 0.1  # seconds between refreshes of the view the API reads


class ReplayObserver(Protocol):
    def events_replayed(self, count: int) -> None: ...
    def confirm_latency(self, seconds: float) -> None: ...


class RunProgress:
    def __init__(self, job: ReplayJob, recorder: JobRecorder, observer: ReplayObserver, *,
                 checkpoint_every: int, checkpoint_interval: float):
        self.job, self.recorder, self.observer = job, recorder, observer
        self.view = job.copy_of()
        self.tracker: ReplayConfirms | None = None  # once the earlier runs' digest is rebuilt
        # a checkpoint every half of checkpoint_every confirmed events keeps the recorder ahead of the
        # resume bound without ever stalling publishing on a healthy store
        self._step = max(checkpoint_every // 2, 1)
        self._interval = checkpoint_interval
        self._reported = job.confirmed  # confirmed events already counted in the metrics
        self._requested = job.confirmed  # `confirmed` of the last snapshot handed to the recorder
        self._next_checkpoint = 0.0
        self._next_view = 0.0

    def unrecorded(self) -> int:
        """Events sent since the last progress the recorder saved: what a crash now would send again."""
        tracker = self.tracker
        return tracker.confirmed + tracker.in_flight - self.recorder.recorded_confirmed

    def _sync(self) -> None:
        tracker, job = self.tracker, self.job
        if tracker is not None:
            job.confirmed = tracker.confirmed
            job.published = tracker.confirmed + tracker.in_flight
            job.first_position = tracker.first_position
            job.last_position = tracker.last_position
            job.last_event_timestamp = tracker.last_timestamp
            job.digest = tracker.digest

    def refresh(self) -> ReplayJob:
        self._sync()
        self.view = snapshot = self.job.copy_of()
        self._next_view = time.monotonic() + VIEW_EVERY
        return snapshot

    def change(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self.job, name, value)
        self.refresh()

    def checkpoint(self) -> None:
        """Hand the recorder the current progress (it saves the newest it has)."""
        snapshot = self.refresh()
        self.recorder.record(snapshot)
        self._requested = snapshot.confirmed
        self._next_checkpoint = time.monotonic() + self._interval
        self.report_metrics()

    def tick(self) -> None:
        """Called often: a checkpoint when enough was confirmed or time passed, and a fresh view."""
        tracker = self.tracker
        now = time.monotonic()
        if tracker is not None and tracker.confirmed != self._requested and (
                tracker.confirmed - self._requested >= self._step or now >= self._next_checkpoint):
            self.checkpoint()
        elif now >= self._next_view:
            self.refresh()

    def report_metrics(self) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        if tracker.confirmed > self._reported:
            self.observer.events_replayed(tracker.confirmed - self._reported)
            self._reported = tracker.confirmed
        for seconds in tracker.take_latencies():
            self.observer.confirm_latency(seconds)
