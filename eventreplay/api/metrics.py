"""Prometheus metrics of one app, in a registry of its own (not the process-global one), so that
tests can build several apps in one process: the replays (fed by the engine as its ReplayObserver),
the jobs by state, and, read from the broker at each scrape, the archive's queues."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from eventreplay.api.broker_admin import BrokerAdmin, QueueStats
from eventreplay.replay.jobs import JobState, ReplayJob

__all__ = ["CONTENT_TYPE_LATEST", "BrokerQueues", "ReplayMetrics", "read_broker_queues"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerQueues:
    """The archive's queues as the broker saw them at one scrape; a queue that does not exist is None."""

    reachable: bool
    archive: QueueStats | None = None
    dead_letters: QueueStats | None = None


def read_broker_queues(broker: BrokerAdmin, archive_queue: str, dead_letter_queue: str) -> BrokerQueues:
    """Both queues' depth and consumers; a broker that cannot be reached is no error here (/metrics
    says so with eventreplay_broker_up 0)."""
    try:
        return BrokerQueues(True, broker.queue_stats(archive_queue), broker.queue_stats(dead_letter_queue))
    except Exception as error:  # noqa: BLE001 - any broker failure means "not reachable" to a scrape
        log.debug("metrics: the broker did not answer (%s)", error)
        return BrokerQueues(False)


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
            "Time from publishing a replayed message to the broker's confirm (the 1st and every 8th of a run)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.broker = _BrokerCollector()  # read from the broker at each scrape (render's `queues`)
        self.registry.register(self.broker)

    # ReplayObserver (engine side)
    def events_replayed(self, count: int) -> None:
        self.replayed.inc(count)

    def confirm_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def render(self, list_jobs: Callable[[], list[ReplayJob]] | None = None,
               queues: BrokerQueues | None = None) -> bytes:
        """The exposition text; the jobs gauge is refreshed from the job list first, and the broker's
        gauges from `queues` (none of them without it)."""
        if list_jobs is not None:
            counts = {state: 0 for state in JobState}
            for job in list_jobs():
                counts[job.state] += 1
            for state, count in counts.items():
                self.jobs.labels(state=state.value).set(count)
        self.broker.latest = queues
        return generate_latest(self.registry)


class _BrokerCollector:
    """The broker's gauges, from the last scrape's reading: eventreplay_broker_up always once read,
    a queue's gauges only while the broker answered and the queue exists (no stale numbers)."""

    FAMILIES = (
        ("eventreplay_broker_up", "1 if the broker answered this scrape, else 0"),
        ("eventreplay_archive_queue_messages",
         "Messages ready in the archive queue (ARCHIVE_QUEUE; not counting those delivered and not yet acked)"),
        ("eventreplay_archive_queue_consumers", "Consumers of the archive queue"),
        ("eventreplay_dead_letter_queue_messages", "Messages ready in the dead-letter queue (DEAD_LETTER_QUEUE)"),
    )

    def __init__(self) -> None:
        self.latest: BrokerQueues | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, help_text) for name, help_text in self.FAMILIES]

    def collect(self) -> list[GaugeMetricFamily]:
        reading = self.latest
        if reading is None:
            return []
        archive, dead = reading.archive, reading.dead_letters
        values = (1 if reading.reachable else 0, archive and archive.messages, archive and archive.consumers,
                  dead and dead.messages)
        return [GaugeMetricFamily(name, help_text, value=value)
                for (name, help_text), value in zip(self.FAMILIES, values) if value is not None]
