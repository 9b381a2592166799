"""Latency benchmark: how long an event takes from its publish until it is durably stored by the
archive consumer, at a steady rate, beside how long it takes to reach a raw pika consumer, measured
in the same run.

    .venv/bin/python bench/latency.py                          # 100/s and 1,000/s, 20 s each, 3 runs
    .venv/bin/python bench/latency.py --rate 500 --seconds 10 --repeat 1

What is measured, per rate, one row per run (`--repeat`, default 3) plus the median:

- Publish time: a publisher process sends simulator events at --rate with the simulator's own
  publish_events (confirms, paced) and notes time.monotonic() per event_id as it hands each event to
  pika (CLOCK_MONOTONIC: one clock for every process of the machine).
- Stored time: `python consumer.py` runs as a process on a fresh SQLite file, fresh exchange and
  queues. A reader thread of the benchmark asks the store every ~1 ms for its last position and reads
  the rows after the previous one seen, noting for each event_id the time that look STARTED. Rows
  become visible when their transaction commits, and in WAL mode with synchronous=FULL a commit is
  synced before it becomes visible; positions grow in commit order. So an event was stored after
  the previous look started and before this one did: the latency shown is high by between 0 and one
  look interval (its mean and p99 are in the table). The stored `received_at` is the consumer's
  receive time, not its store time, so it is not used.
- Warm-up: each measurement publishes for --warmup (1 s) + --seconds; only the events published
  after the warm-up count (a consumer's first batch into a new file is not the steady state).
- Raw floor (the ceiling of this benchmark): the same publisher, and a raw pika consumer in a child
  process (ack per message, nothing stored) noting time.monotonic() when each message reaches its
  callback: what the broker and pika alone cost. Ratio = stored p50 / raw p50.

Every process shares the machine's two cores with the broker (and the reader's ~1 ms looks cost some
CPU too), so a busy machine shows up in the tails: look at the load average printed per run.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (puts the project on sys.path)
from harness import BrokerProbe, Column, ProjectProcess, unique, wait_until  # noqa: E402

from eventreplay.broker import ArchiveTopology, ConfirmedPublisher, close_quietly, connect  # noqa: E402
from eventreplay.logs import configure_logging  # noqa: E402
from eventreplay.settings import get_settings  # noqa: E402
from eventreplay.simulator import publish_events  # noqa: E402
from eventreplay.store import EventQuery, open_store  # noqa: E402

LOOK_EVERY = 0.001  # seconds the reader sleeps between looks at the store
DRAIN_TIMEOUT = 60.0  # seconds to wait after the last publish for the last event to arrive


# publisher and raw receiver (child processes) -------------------------------------------------------
def _steady_publisher(amqp_url: str, exchange: str, rate: float, count: int, ready, go, report) -> None:
    """Publish `count` events at `rate`/s; report [(event_id, publish time)], confirmed, seconds."""
    events = harness.simulated_events(count)
    connection = connect(amqp_url, client_name="bench-latency-publisher")
    publisher = ConfirmedPublisher(connection)
    stamps: list[tuple[str, float]] = []

    def stamped():
        for event in events:  # taken by publish_events right before it publishes the event
            stamps.append((event.event_id, time.monotonic()))
            yield event

    ready.set()
    go.wait()
    result = publish_events(publisher, stamped(), exchange=exchange, rate=rate, count=count, mandatory=True)
    report.put((stamps, result.confirmed, result.elapsed))
    close_quietly(connection)


def _raw_receiver(amqp_url: str, queue: str, count: int, report) -> None:
    """Note the arrival time of every message by message_id (= event_id); ack each; nothing stored.
    Reports once `count` distinct events have arrived."""
    connection = connect(amqp_url, client_name="bench-latency-raw")
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1000)
    seen: dict[str, float] = {}

    def on_message(ch, method, properties, _body) -> None:
        seen.setdefault(properties.message_id, time.monotonic())
        ch.basic_ack(method.delivery_tag)
        if len(seen) >= count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    report.put(seen)
    close_quietly(connection)


class Publisher:
    """The publisher child: made ready (events built, connected) before `go`."""

    def __init__(self, amqp_url: str, exchange: str, rate: float, count: int):
        spawn = multiprocessing.get_context("spawn")
        self.ready, self.go, self.report = spawn.Event(), spawn.Event(), spawn.Queue()
        self.process = spawn.Process(target=_steady_publisher, daemon=True,
                                     args=(amqp_url, exchange, rate, count, self.ready, self.go, self.report))
        self.process.start()
        self.seconds = count / rate  # how long it publishes: the wait for its report allows for it
        wait_until(self.ready.is_set, "the publisher to be ready", timeout=300, every=0.05, check=self.check)

    def check(self) -> None:
        if self.process.exitcode not in (None, 0):
            raise RuntimeError(f"the publisher exited with code {self.process.exitcode}")

    def run(self) -> tuple[dict[str, float], float]:
        """Let it go and wait until it is done: ({event_id: publish time}, publisher seconds)."""
        self.go.set()
        stamps, confirmed, elapsed = self.report.get(timeout=self.seconds + harness.TIMEOUT)
        self.process.join(30)
        if confirmed != len(stamps):
            raise RuntimeError(f"{confirmed} of {len(stamps)} published events confirmed")
        return dict(stamps), elapsed


# the reader --------------------------------------------------------------------------------------------
class StoreWatcher(threading.Thread):
    """Notes for every stored event the start time of the first look that saw it (see the module
    docstring for why that bounds its store time), and the start time of every look."""

    def __init__(self, store_url: str):
        super().__init__(daemon=True)
        self.store_url = store_url
        self.seen: dict[str, float] = {}
        self.looks: list[float] = []
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            with open_store(self.store_url) as store:
                last = store.last_position()
                while not self._stopping.is_set():
                    started = time.monotonic()
                    top = store.last_position()
                    if top > last:
                        for event in store.read(EventQuery(after_position=last, up_to_position=top)):
                            self.seen.setdefault(event.event_id, started)
                        last = top
                    self.looks.append(started)
                    time.sleep(LOOK_EVERY)
        except BaseException as error:  # noqa: BLE001 - reported by check() in the main thread
            self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the store reader failed: {self.error!r}")

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)

    def intervals(self) -> list[float]:
        return sorted(b - a for a, b in zip(self.looks, self.looks[1:]))


# measurements ----------------------------------------------------------------------------------------------
def latencies(published: dict[str, float], arrived: dict[str, float], warmup: float) -> dict:
    """p50/p90/p99/max in seconds of arrival - publish over the events published after the first
    `warmup` seconds (a consumer's first batch, a new file, are not the steady state), and how many
    published events never arrived."""
    start = min(published.values(), default=0.0) + warmup
    counted = {key: at for key, at in published.items() if at >= start}
    values = sorted(arrived[key] - at for key, at in counted.items() if key in arrived)
    return {"p50": harness.percentile(values, 0.50), "p90": harness.percentile(values, 0.90),
            "p99": harness.percentile(values, 0.99), "max": values[-1] if values else float("nan"),
            "counted": len(values), "missing": len(published) - sum(1 for key in published if key in arrived)}


def fresh_topology(probe: BrokerProbe) -> ArchiveTopology:
    tag = unique("bench-latency")
    topology = ArchiveTopology(f"{tag}-exchange", f"{tag}-archive", f"{tag}-archive.dead-letter")
    topology.declare(probe.channel)
    return topology


def measure_raw(amqp_url: str, probe: BrokerProbe, rate: float, count: int, warmup: float) -> dict:
    """Publish -> a raw pika consumer's callback."""
    topology = fresh_topology(probe)
    spawn = multiprocessing.get_context("spawn")
    report = spawn.Queue()
    receiver = spawn.Process(target=_raw_receiver, args=(amqp_url, topology.queue, count, report), daemon=True)
    receiver.start()
    try:
        wait_until(lambda: probe.consumers(topology.queue) >= 1, "the raw receiver to attach", timeout=120)
        publisher = Publisher(amqp_url, topology.exchange, rate, count)
        published, _elapsed = publisher.run()
        arrived = report.get(timeout=DRAIN_TIMEOUT)
    finally:
        harness.cleanup(lambda: receiver.join(10), lambda: receiver.is_alive() and receiver.terminate(),
                        lambda: probe.delete([topology.queue, topology.dead_letter_queue], [topology.exchange]))
    return latencies(published, arrived, warmup)


def measure_stored(amqp_url: str, probe: BrokerProbe, rate: float, count: int, warmup: float,
                   folder: Path) -> dict:
    """Publish -> durably stored by a `python consumer.py` process, seen by the reader thread."""
    topology = fresh_topology(probe)
    with tempfile.TemporaryDirectory(prefix="store-", dir=folder) as store_folder:
        store_url = harness.sqlite_url(store_folder)
        env = {"EXCHANGE": topology.exchange, "ARCHIVE_QUEUE": topology.queue,
               "DEAD_LETTER_QUEUE": topology.dead_letter_queue, "EVENT_STORE_URL": store_url}
        consumer = ProjectProcess("consumer.py", env, folder / f"{topology.queue}.log")
        watcher = StoreWatcher(store_url)
        try:
            wait_until(lambda: probe.consumers(topology.queue) >= 1, "the consumer to attach", timeout=120,
                       check=consumer.check)
            watcher.start()
            publisher = Publisher(amqp_url, topology.exchange, rate, count)
            published, elapsed = publisher.run()
            wait_until(lambda: len(watcher.seen) >= count, f"{count} events stored", timeout=DRAIN_TIMEOUT,
                       check=lambda: (consumer.check(), watcher.check()))
        finally:
            harness.cleanup(watcher.stop, consumer.stop,
                            lambda: probe.delete([topology.queue, topology.dead_letter_queue], [topology.exchange]))
    result = latencies(published, watcher.seen, warmup)
    looks = watcher.intervals()
    result.update(sent_rate=count / elapsed, look_mean=statistics.fmean(looks) if looks else float("nan"),
                  look_p99=harness.percentile(looks, 0.99))
    return result


def one_run(amqp_url: str, probe: BrokerProbe, rate: float, seconds: float, warmup: float, folder: Path) -> dict:
    """The raw floor, then the consumer, at one rate: one row of the table."""
    count = max(1, round(rate * (seconds + warmup)))
    raw = measure_raw(amqp_url, probe, rate, count, warmup)
    run = measure_stored(amqp_url, probe, rate, count, warmup, folder)
    run.update({f"raw_{key}": value for key, value in raw.items()})
    run["events"] = count
    run["ratio"] = run["p50"] / run["raw_p50"] if run["raw_p50"] > 0 else float("nan")
    run["load"] = os.getloadavg()[0]
    return run


# output --------------------------------------------------------------------------------------------------
COLUMNS = [
    Column("counted", "events", harness.count),
    Column("sent_rate", "sent /s", harness.rate),
    Column("p50", "stored p50 ms", harness.millis),
    Column("p90", "p90 ms", harness.millis),
    Column("p99", "p99 ms", harness.millis),
    Column("max", "max ms", harness.millis),
    Column("raw_p50", "raw p50 ms", harness.millis),
    Column("raw_p99", "raw p99 ms", harness.millis),
    Column("ratio", "p50 stored/raw", lambda value: f"{value:.1f}x"),
    Column("look_mean", "reader look mean ms", lambda value: f"{value * 1000:.2f}"),
    Column("look_p99", "look p99 ms", lambda value: f"{value * 1000:.2f}"),
    Column("missing", "missing", harness.count),
    Column("load", "load avg", lambda value: f"{value:.1f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, action="append", help="events/s; repeat for several (default 100 and 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per measurement")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds published first and left out of the figures (added to --seconds)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate; one row each plus the median")
    args = parser.parse_args()
    rates = args.rate or [100.0, 1000.0]
    settings = get_settings()
    configure_logging("WARNING")
    out = harness.console()
    out.print(f"consumer: batch {settings.batch_size}, prefetch {settings.prefetch}, "
              f"BATCH_MAX_LATENCY_MS {settings.batch_max_latency_ms}; per rate and run {args.warmup:g} s of warm-up "
              f"(not counted), then {args.seconds:g} s measured")
    probe = BrokerProbe(settings.amqp_url, "bench-latency-probe")
    results: dict[float, list[dict]] = {rate: [] for rate in rates}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as folder:
            for number in range(1, args.repeat + 1):
                for rate in rates:
                    run = one_run(settings.amqp_url, probe, rate, args.seconds, args.warmup, Path(folder))
                    results[rate].append(run)
                    out.print(f"run {number}/{args.repeat} at {rate:g}/s: p50 {run['p50'] * 1000:.1f} ms, "
                              f"p99 {run['p99'] * 1000:.1f} ms (raw p50 {run['raw_p50'] * 1000:.1f} ms)")
    finally:
        probe.close()
    caption = ("stored = publish -> visible (committed, synced) in the SQLite store, high by 0..one reader look "
               "(look interval shown); raw = publish -> a raw pika consumer's callback. Publish time = when the "
               "simulator's publish_events handed the event to pika.")
    groups = [(f"{rate:g}/s #", runs) for rate, runs in results.items()]
    out.print(harness.runs_table("latency: publish -> durably stored (consumer.py, SQLite) vs publish -> raw "
                                 "consumer", COLUMNS, groups, caption))


if __name__ == "__main__":
    main()
