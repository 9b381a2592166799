"""The consumer's Prometheus metrics, in a registry of its own, served at /metrics on
CONSUMER_METRICS_HOST:CONSUMER_METRICS_PORT (README, "Monitoring"). IngestMetrics is the consumer's
IngestObserver (ingest/observer.py); prometheus_client's metrics are thread-safe, so the connection
thread and the batch writer record into it directly."""
from __future__ import annotations

import time
from http.server import HTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from eventreplay.ingest.batch import Batch
from eventreplay.ingest.triage import REASON_KINDS

PREFIX = "eventreplay_ingest"


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.stored = Counter(f"{PREFIX}_events_stored", "Events appended to the event store (new ones)",
                              registry=registry)
        self.duplicates = Counter(f"{PREFIX}_duplicates", "Valid events the store held already (skipped)",
                                  registry=registry)
        self.dead_lettered = Counter(f"{PREFIX}_dead_lettered", "Messages sent to the dead-letter queue, by kind "
                                     "of reason", ["reason"], registry=registry)
        for kind in REASON_KINDS:  # every series exists from the start: rate() and alerts see a 0, not nothing
            self.dead_lettered.labels(reason=kind)
        self.replays_skipped = Counter(f"{PREFIX}_replays_skipped", "Replayed messages (x-replay-id) not stored "
                                       "again", registry=registry)
        self.redelivered = Counter(f"{PREFIX}_redelivered", "Deliveries the broker flagged as redelivered",
                                   registry=registry)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "Deliveries per stored and acked batch",
                                    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
                                    registry=registry)
        self.commit_seconds = Histogram(
            f"{PREFIX}_store_commit_seconds", "Time the event store took to append and commit one batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry)
        self.lag_seconds = Histogram(
            f"{PREFIX}_publish_to_stored_seconds", "Time from publish (the message's AMQP timestamp, whole "
            "seconds) to stored and acked, for events that carry a timestamp",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400), registry=registry)
        self.reconnects = Counter(f"{PREFIX}_reconnects", "Connections to the broker opened again after the "
                                  "first one was lost or failed", registry=registry)
        self.connected = Gauge(f"{PREFIX}_broker_connected", "1 while the consumer is attached to the archive "
                               "queue, else 0", registry=registry)

    # IngestObserver ------------------------------------------------------------------------------
    def broker_connected(self, connected: bool) -> None:
        self.connected.set(1 if connected else 0)

    def reconnected(self) -> None:
        self.reconnects.inc()

    def store_committed(self, seconds: float) -> None:
        self.commit_seconds.observe(seconds)

    def batch_acked(self, batch: Batch, new: int) -> None:
        self.stored.inc(new)
        self.duplicates.inc(len(batch.events) - new)
        for letter in batch.dead_letters:
            self.dead_lettered.labels(reason=letter.kind).inc()
        self.replays_skipped.inc(batch.replayed)
        self.batch_size.observe(len(batch))
        now = time.time()
        for event in batch.events:
            published = event.properties.get("timestamp")
            if isinstance(published, (int, float)) and published > 0:
                self.lag_seconds.observe(max(0.0, now - published))

    def message_redelivered(self) -> None:
        self.redelivered.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsUnavailable(Exception):
    """The metrics port cannot be listened on (in use, not allowed, no such address)."""


def serve_metrics(metrics: IngestMetrics, host: str, port: int) -> HTTPServer:
    """Serve the metrics over HTTP in a daemon thread (shutdown() and server_close() end it)."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        raise MetricsUnavailable(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
    return server
