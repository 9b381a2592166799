"""`python consumer.py`: open the store named by EVENT_STORE_URL and run the ArchiveConsumer until
SIGTERM or Ctrl-C (which finish the current batch: stored and acked) -> exit code 0. A configuration
error -> exit code 2: a wrong EVENT_STORE_URL, RabbitMQ refusing the archive topology (403/406), or
CONSUMER_METRICS_PORT taken. Its Prometheus metrics are served on CONSUMER_METRICS_HOST:PORT (0: off)."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from http.server import HTTPServer

from eventreplay.ingest.consumer import ArchiveConsumer
from eventreplay.ingest.metrics import IngestMetrics, MetricsUnavailable, serve_metrics
from eventreplay.logs import configure_logging
from eventreplay.retention import Pruner, RetentionPolicy
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.settings import Settings, get_settings
from eventreplay.store import EventStore, PersistenceError, StoreUnavailable, open_store

log = logging.getLogger("eventreplay.ingest")

EXIT_CONFIG = 2  # a setting is wrong: restarting will not help


def main(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    consumer: list[ArchiveConsumer] = []

    def on_signal(signum, _frame) -> None:
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()
        for running in consumer:
            running.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    metrics = IngestMetrics()
    try:  # first: a port that is taken is said at once, not after the store has opened
        server = _serve_metrics(metrics, settings)
    except MetricsUnavailable as error:
        print(f"consumer: {error} (set CONSUMER_METRICS_PORT to a free port, or 0 for no metrics)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        return _archive(settings, stop, consumer, metrics)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _serve_metrics(metrics: IngestMetrics, settings: Settings) -> HTTPServer | None:
    host, port = settings.consumer_metrics_host, settings.consumer_metrics_port
    if not port:
        return None
    server = serve_metrics(metrics, host, port)
    log.info("Prometheus metrics at http://%s:%d/metrics", host, port)
    return server


def _archive(settings: Settings, stop: threading.Event, consumer: list[ArchiveConsumer],
             metrics: IngestMetrics) -> int:
    try:
        store = _open_store(settings, stop)
    except PersistenceError as error:
        print(f"consumer: cannot use EVENT_STORE_URL: {one_line(error)}", file=sys.stderr)
        return EXIT_CONFIG
    if store is None:  # stopped while waiting for the store
        return 0
    pruner = None
    policy = RetentionPolicy.from_settings(settings)
    with store:
        if not policy.keeps_everything:
            pruner = Pruner(store, policy, settings.prune_interval_s)
            pruner.start()
        consumer.append(ArchiveConsumer(settings, store, observer=metrics,
                                        store_url=settings.event_store_url if settings.writer_process else None))
        if not stop.is_set():
            consumer[0].run()
        if pruner is not None:
            pruner.stop()
            pruner.join(timeout=30)
        if consumer[0].refused is not None:
            return EXIT_CONFIG  # run() logged why
    return 0


def _open_store(settings: Settings, stop: threading.Event) -> EventStore | None:
    """The store, waiting while it is unavailable, with the payload fields of INDEXED_FIELDS indexed
    from now on; a wrong URL raises at once."""
    try:
        for attempt in RetryPolicy(interrupt=stop).retrying(StoreUnavailable, doing="open the event store"):
            with attempt:
                store = open_store(settings.event_store_url)
                try:
                    store.index_fields(settings.indexed_field_names)
                except BaseException:
                    store.close()
                    raise
    except Interrupted:
        return None
    behind = [index.field for index in store.field_indexes() if not index.ready]
    if behind:
        log.warning("events stored before %s was indexed are not in its index yet: run `task reindex` (ingest "
                    "goes on meanwhile; until then a match on it reads the archive)", ", ".join(behind))
    return store
