"""`python consumer.py`: open the store named by EVENT_STORE_URL and run the ArchiveConsumer until
SIGTERM or Ctrl-C (which finish the current batch: stored and acked) -> exit code 0. A configuration
error -> exit code 2: a wrong EVENT_STORE_URL, or RabbitMQ refusing the archive topology (403/406)."""
from __future__ import annotations

import logging
import signal
import sys
import threading

from eventreplay.ingest.consumer import ArchiveConsumer
from eventreplay.logs import configure_logging
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

    try:
        store = _open_store(settings.event_store_url, stop)
    except PersistenceError as error:
        print(f"consumer: cannot use EVENT_STORE_URL: {one_line(error)}", file=sys.stderr)
        return EXIT_CONFIG
    if store is None:  # stopped while waiting for the store
        return 0
    with store:
        consumer.append(ArchiveConsumer(settings, store))
        if stop.is_set():
            return 0
        consumer[0].run()
        if consumer[0].refused is not None:
            return EXIT_CONFIG  # run() logged why
    return 0


def _open_store(url: str, stop: threading.Event) -> EventStore | None:
    """The store, waiting while it is unavailable; a wrong URL raises at once."""
    try:
        for attempt in RetryPolicy(interrupt=stop).retrying(StoreUnavailable, doing="open the event store"):
            with attempt:
                return open_store(url)
    except Interrupted:
        return None
    raise AssertionError("unreachable")
