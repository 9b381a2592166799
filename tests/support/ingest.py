"""The consumer in the tests: its settings (in process) or environment (as a process) for a
test's store and archive names, and an ArchiveConsumer running in a thread."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from eventreplay.ingest import ArchiveConsumer
from eventreplay.settings import Settings
from eventreplay.store import EventStore
from tests.support.processes import program_env
from tests.support.waiting import wait_for


def consumer_settings(amqp_url: str, store_url: str, names: dict[str, str], **overrides) -> Settings:
    return Settings(
        _env_file=None, amqp_url=amqp_url, event_store_url=store_url, exchange=names["exchange"],
        archive_queue=names["archive_queue"], dead_letter_queue=names["dead_letter_queue"], **overrides,
    )


def consumer_env(amqp_url: str, store_url: str, names: dict[str, str], **overrides: str) -> dict[str, str]:
    """The environment of `python consumer.py` for that broker, store and archive (consumer_settings
    as a process reads them), logging at INFO and serving no metrics (several consumers run at once)
    unless `overrides` say otherwise."""
    return program_env(**{
        "AMQP_URL": amqp_url, "EVENT_STORE_URL": store_url, "EXCHANGE": names["exchange"],
        "ARCHIVE_QUEUE": names["archive_queue"], "DEAD_LETTER_QUEUE": names["dead_letter_queue"],
        "LOG_LEVEL": "INFO", "CONSUMER_METRICS_PORT": "0", **overrides,
    })


@contextmanager
def running_consumer(settings: Settings, store: EventStore, **options) -> Iterator[ArchiveConsumer]:
    """An ArchiveConsumer in a thread, attached to its queue before the body runs; stopped (and
    checked to have stopped) afterwards."""
    consumer = ArchiveConsumer(settings, store, summary_every=3600, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            failure.append(error)

    thread = threading.Thread(target=run, name="archive-consumer", daemon=True)
    thread.start()
    wait_for(lambda: consumer.consuming.is_set() or failure, timeout=15, what="the consumer to attach")
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the consumer did not stop within 30 s"
    if failure:
        raise failure[0]
