"""Ingestion benchmark: events/s from the first publish until all are stored, per store backend,
beside the raw pika ceiling (plain consume with the same prefetch and multiple-acks, nothing
stored) measured in the same run.

    .venv/bin/python bench/ingest.py --events 20000
    .venv/bin/python bench/ingest.py --events 20000 --backlog   # consume a full queue instead

The publisher runs in a separate process (the simulator's publish_events with confirms), so that it
does not share the consumer's GIL. Each run gets a fresh exchange and queues, deleted afterwards.
SQLite writes a temporary file; EventStoreDB is measured when ESDB_URL is set (in a stream prefix
of its own). Settings (AMQP_URL, BATCH_SIZE, BATCH_MAX_LATENCY_MS, PREFETCH) come from the
environment and .env as for the consumer, or from the options.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pika  # noqa: E402
import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from eventreplay.broker import ArchiveTopology, ConfirmedPublisher  # noqa: E402
from eventreplay.ingest import ArchiveConsumer  # noqa: E402
from eventreplay.logs import configure_logging  # noqa: E402
from eventreplay.settings import Settings, get_settings  # noqa: E402
from eventreplay.simulator import EventFactory, publish_events  # noqa: E402
from eventreplay.store import open_store  # noqa: E402

SEED = 2024
TIMEOUT = 600.0


# the publisher process -------------------------------------------------------------------------
def _publisher(amqp_url: str, exchange: str, events: int, ready, go, done) -> None:
    batch = EventFactory(seed=SEED).take(events)  # made before the clock starts
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    publisher = ConfirmedPublisher(connection)
    ready.set()
    go.wait()
    report = publish_events(publisher, batch, exchange=exchange, mandatory=True)
    connection.close()
    done.put((report.confirmed, report.elapsed))


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    publish_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


class Bench:
    def __init__(self, settings: Settings, events: int, backlog: bool):
        self.settings, self.events, self.backlog = settings, events, backlog
        self.spawn = multiprocessing.get_context("spawn")

    def names(self) -> Settings:
        tag = f"bench-{uuid.uuid4().hex[:10]}"
        return self.settings.model_copy(update={
            "exchange": f"{tag}-exchange", "archive_queue": f"{tag}-archive",
            "dead_letter_queue": f"{tag}-archive.dead-letter",
        })

    def measure(self, name: str, consume) -> Run:
        """`consume(settings, done_event)` starts consuming in a thread and returns (is_finished, stop)."""
        settings = self.names()
        topology = ArchiveTopology(settings.exchange, settings.archive_queue, settings.dead_letter_queue)
        connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        topology.declare(connection.channel())
        ready, go, done = self.spawn.Event(), self.spawn.Event(), self.spawn.Queue()
        child = self.spawn.Process(
            target=_publisher, args=(settings.amqp_url, settings.exchange, self.events, ready, go, done)
        )
        child.start()
        try:
            if not ready.wait(120):
                raise RuntimeError("the publisher process did not start")
            if self.backlog:  # fill the queue first; the clock starts with consuming
                go.set()
                confirmed, publish_seconds = done.get(timeout=TIMEOUT)
                started = time.monotonic()
                finished, stop = consume(settings)
            else:
                finished, stop = consume(settings)  # attached before the first publish
                started = time.monotonic()
                go.set()
            deadline = started + TIMEOUT
            while not finished():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: not all {self.events} events consumed in {TIMEOUT:.0f} s")
                time.sleep(0.002)
            seconds = time.monotonic() - started
            stop()
            if not self.backlog:
                confirmed, publish_seconds = done.get(timeout=60)
            assert confirmed == self.events, (confirmed, self.events)
            return Run(name, self.events, seconds, publish_seconds)
        finally:
            child.join(timeout=30)
            channel = connection.channel()
            for queue in (settings.archive_queue, settings.dead_letter_queue):
                channel.queue_delete(queue)
            channel.exchange_delete(settings.exchange)
            connection.close()

    # what is measured ------------------------------------------------------------------------
    def raw_ceiling(self) -> Run:
        def consume(settings: Settings):
            counted, stopping, attached = [0], threading.Event(), threading.Event()
            every = settings.batch_size

            def run() -> None:
                connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
                channel = connection.channel()
                channel.basic_qos(prefetch_count=settings.prefetch)

                def on_message(ch, method, _properties, _body) -> None:
                    counted[0] += 1
                    if counted[0] % every == 0 or counted[0] == self.events:
                        ch.basic_ack(method.delivery_tag, multiple=True)

                channel.basic_consume(settings.archive_queue, on_message)
                attached.set()
                while not stopping.is_set():
                    connection.process_data_events(time_limit=0.05)
                connection.close()

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            attached.wait(30)
            return (lambda: counted[0] >= self.events), (lambda: (stopping.set(), thread.join(30)))

        return self.measure("raw pika (nothing stored)", consume)

    def ingest(self, name: str, store_url: str) -> Run:
        store = open_store(store_url)

        def consume(settings: Settings):
            consumer = ArchiveConsumer(settings.model_copy(update={"event_store_url": store_url}), store,
                                       summary_every=3600)
            thread = threading.Thread(target=consumer.run, daemon=True)
            thread.start()
            consumer.consuming.wait(30)

            def stop() -> None:
                consumer.stop()
                thread.join(60)

            return (lambda: consumer.stats.stored >= self.events), stop

        try:
            run = self.measure(name, consume)
            stored = store.count()
            assert stored == self.events, f"{name}: {stored} stored, expected {self.events}"
            return run
        finally:
            store.close()


def with_stream_prefix(esdb_url: str, prefix: str) -> str:
    parts = urlsplit(esdb_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("streamPrefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def main(
    events: int = typer.Option(20_000, min=1, help="Events per run."),
    batch_size: int = typer.Option(None, help="BATCH_SIZE for this run (default: settings)."),
    prefetch: int = typer.Option(None, help="PREFETCH for this run (default: settings)."),
    latency_ms: int = typer.Option(None, help="BATCH_MAX_LATENCY_MS for this run (default: settings)."),
    backlog: bool = typer.Option(False, help="Publish everything first, then time consuming only."),
    repeat: int = typer.Option(3, min=1, help="Runs per row; the fastest is shown (a shared machine is noisy)."),
) -> None:
    """Measure ingestion per backend beside the raw pika ceiling."""
    settings = get_settings()
    configure_logging("WARNING")
    overrides = {k: v for k, v in {"batch_size": batch_size, "prefetch": prefetch,
                                   "batch_max_latency_ms": latency_ms}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    bench = Bench(settings, events, backlog)
    console = Console()
    console.print(f"{events} events, batch {settings.batch_size}, prefetch {settings.prefetch}, "
                  f"latency {settings.batch_max_latency_ms} ms, {'backlog' if backlog else 'live publishing'}")
    def best(measure) -> Run:
        return min((measure() for _ in range(repeat)), key=lambda run: run.seconds)

    def sqlite_run() -> Run:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
            return bench.ingest("sqlite", f"sqlite:///{Path(folder) / 'events.db'}")

    def esdb_run() -> Run:
        prefix = f"bench-{uuid.uuid4().hex[:8]}-"  # a fresh, empty store each run
        return bench.ingest("esdb", with_stream_prefix(os.environ["ESDB_URL"], prefix))

    runs = [best(bench.raw_ceiling), best(sqlite_run)]
    if os.environ.get("ESDB_URL"):
        runs.append(best(esdb_run))
    ceiling = runs[0].rate
    table = Table(title="ingest: first publish -> all stored" if not backlog else "ingest: full queue -> all stored")
    for column in ("backend", "events", "seconds", "events/s", "% of ceiling", "publish s"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for run in runs:
        table.add_row(run.name, f"{run.events}", f"{run.seconds:.2f}", f"{run.rate:,.0f}",
                      f"{100 * run.rate / ceiling:.0f}%", f"{run.publish_seconds:.2f}")
    console.print(table)
    console.print(f"fastest of {repeat} runs per row; 'publish s' is the publisher's own time")


if __name__ == "__main__":
    typer.run(main)
