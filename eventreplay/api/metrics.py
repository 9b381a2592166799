"""Prometheus metrics of one app, in a registry of its own (not the process-global one), so that
tests can build several apps in one process."""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from eventreplay.replay.jobs import JobState, ReplayJob

__all__ = ["CONTENT_TYPE_LATEST", "ReplayMetrics"]


class ReplayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.replayed = Counter(
            "eventreplay_events_replayed", "Events replayed and confirmed by the broker", registry=self.registry
        )
        self.jobs = Gauge(
            "eventreplay_replay_jobs", "Replay jobs by state", ["state"], registry=self.registry
        )
        self.latency = Histogram(
            "eventreplay_publish_confirm_seconds",
            "Time from publishing a replayed message to the broker's confirm (sampled)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    # ReplayObserver (engine side)
    def events_replayed(self, count: int) -> None:
        self.replayed.inc(count)

    def confirm_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def render(self, list_jobs: Callable[[], list[ReplayJob]] | None = None) -> bytes:
        """The exposition text; the jobs gauge is refreshed from the job list first."""
        if list_jobs is not None:
            counts = {state: 0 for state in JobState}
            for job in list_jobs():
                counts[job.state] += 1
            for state, count in counts.items():
                self.jobs.labels(state=state.value).set(count)
        return generate_latest(self.registry)
