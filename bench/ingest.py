"""Ingestion benchmark: how fast the archive consumer stores what waits in its queue, beside a raw
pika drain of the same messages that stores nothing, measured in the same run.

    .venv/bin/python bench/ingest.py                    # backlog of 20,000 events, 1 consumer, 3 runs
    .venv/bin/python bench/ingest.py --consumers 3      # 3 competing consumer processes
    .venv/bin/python bench/ingest.py --consumers 1,2,3  # 1, then 2, then 3 in each run, side by side
    .venv/bin/python bench/ingest.py --live             # from the first publish instead
    .venv/bin/python bench/ingest.py --in-process       # ArchiveConsumer in a thread (for profiling)

What is measured, one row per run (`--repeat`, default 3) plus the median. Every measurement gets a
fresh exchange and queues (deleted afterwards) and a fresh store: a temporary SQLite file always, and
EventStoreDB when ESDB_URL is set (in a stream prefix of its own; the development emulator is a slow
stand-in, compare it only relatively).

- Backlog (default): --events persistent simulator events (EventFactory bodies, properties and
  routing keys) are published to the exchange with confirms first, untimed, so they wait in the
  archive queue; a second of quiet lets the broker finish writing them. Then K `python consumer.py` processes start (the command users run, settings in the
  environment). The clock starts when a passive declare on the archive queue shows K consumers
  attached (with K > 1 the first one may have started earlier: the events already stored then are
  left out of the count, and the spread between the first and the K-th attach is shown). It stops
  when the store holds all N events: for SQLite the benchmark asks the store for its last position
  every 5 ms (one index lookup) and confirms with count() once it reaches N; for EventStoreDB it
  reads, every 20 ms, only the events after the last one it saw.
- Ceiling: one raw pika consumer in a child process (prefetch 1000, basic_ack multiple every 500,
  nothing stored) drains the same backlog; the clock starts the same way (consumer count 1) and
  stops when it has received the N-th message and acked it. One drain also when K > 1: K consumers
  are compared with what one plain connection takes out of the queue.
- `--live`: the consumers (or the raw drain) attach first to an empty queue; a publisher process (the
  simulator's publish_events with confirms, as fast as the broker confirms) then sends the N events,
  and the clock runs from its first publish until all are stored (or drained). The publisher's own
  time is shown: in this mode it bounds the rate.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (puts the project on sys.path)
from harness import BrokerProbe, Column, ProjectProcess, unique, wait_until  # noqa: E402

from eventreplay.broker import ArchiveTopology, ConfirmedPublisher, close_quietly, connect  # noqa: E402
from eventreplay.ingest import ArchiveConsumer  # noqa: E402
from eventreplay.logs import configure_logging  # noqa: E402
from eventreplay.settings import Settings, get_settings  # noqa: E402
from eventreplay.simulator import OutgoingEvent, publish_events  # noqa: E402
from eventreplay.store import EventQuery, open_store  # noqa: E402

RAW_PREFETCH = 1000
RAW_ACK_EVERY = 500
ATTACH_POLL = 0.002  # seconds between looks at the consumer count while waiting for the start
ESDB_POLL = 0.02  # reading new events from EventStoreDB costs more than a SQLite lookup


@dataclass(frozen=True)
class Names:
    """A run's own exchange and queues."""

    exchange: str
    queue: str
    dead_letters: str

    @classmethod
    def fresh(cls) -> "Names":
        tag = unique("bench-ingest")
        return cls(f"{tag}-exchange", f"{tag}-archive", f"{tag}-archive.dead-letter")

    @property
    def topology(self) -> ArchiveTopology:
        return ArchiveTopology(self.exchange, self.queue, self.dead_letters)


@dataclass
class Bench:
    settings: Settings
    events: list[OutgoingEvent]
    probe: BrokerProbe
    folder: Path
    consumers: int = 1
    live: bool = False
    in_process: bool = False
    overrides: dict[str, int] = field(default_factory=dict)  # BATCH_SIZE etc. given as options

    @property
    def n(self) -> int:
        return len(self.events)


# publishing -----------------------------------------------------------------------------------------
def publish_backlog(amqp_url: str, exchange: str, events: list[OutgoingEvent]) -> None:
    """Fill the archive queue before any clock: every event confirmed, as a publisher would send it."""
    connection = connect(amqp_url, client_name="bench-backlog-publisher")
    try:
        report = publish_events(ConfirmedPublisher(connection), events, exchange=exchange, mandatory=True)
    finally:
        close_quietly(connection)
    if report.confirmed != len(events):
        raise RuntimeError(f"only {report.confirmed} of {len(events)} backlog events confirmed")


def _live_publisher(amqp_url: str, exchange: str, count: int, ready, go, report) -> None:
    """Child process (--live): the events are made and the connection opened before `go`; reports
    the monotonic time of the first publish, the confirmed count and the publisher's own seconds."""
    events = harness.simulated_events(count)
    connection = connect(amqp_url, client_name="bench-live-publisher")
    publisher = ConfirmedPublisher(connection)
    ready.set()
    go.wait()
    first = time.monotonic()
    result = publish_events(publisher, events, exchange=exchange, mandatory=True)
    report.put((first, result.confirmed, result.elapsed))
    close_quietly(connection)


# the consumers ----------------------------------------------------------------------------------------
def _raw_drain(amqp_url: str, queue: str, count: int, report) -> None:
    """Child process: the ceiling. Takes `count` messages with prefetch RAW_PREFETCH, acks multiple
    every RAW_ACK_EVERY and at the last one, stores nothing; reports when the last was acked."""
    connection = connect(amqp_url, client_name="bench-raw-drain")
    channel = connection.channel()
    channel.basic_qos(prefetch_count=RAW_PREFETCH)
    received = 0

    def on_message(ch, method, _properties, _body) -> None:
        nonlocal received
        received += 1
        if received % RAW_ACK_EVERY == 0 or received == count:
            ch.basic_ack(method.delivery_tag, multiple=True)  # BlockingChannel sends it at once
        if received == count:
            report.put(time.monotonic())
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    close_quietly(connection)


class ChildProcess:
    """A multiprocessing child with the check()/stop() of a ProjectProcess."""

    def __init__(self, target, args: tuple):
        self.process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
        self.process.start()

    def check(self) -> None:
        if self.process.exitcode not in (None, 0):
            raise RuntimeError(f"{self.process.name} exited with code {self.process.exitcode}")

    def stop(self) -> None:
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


class InProcessConsumer:
    """--in-process: the ArchiveConsumer in a thread of this process (the old way, handy under a
    profiler), with the check()/stop() of a ProjectProcess."""

    def __init__(self, settings: Settings, store_url: str):
        self.store = open_store(store_url)
        self.consumer = ArchiveConsumer(settings.model_copy(update={"event_store_url": store_url}), self.store,
                                        summary_every=3600, store_url=store_url if settings.writer_process else None)
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)
        self.thread.start()

    def check(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the in-process consumer stopped")

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(60)
        self.store.close()


def start_consumers(bench: Bench, names: Names, store_url: str) -> list:
    if bench.in_process:
        update = {"exchange": names.exchange, "archive_queue": names.queue, "dead_letter_queue": names.dead_letters,
                  **{key.lower(): value for key, value in bench.overrides.items()}}
        return [InProcessConsumer(bench.settings.model_copy(update=update), store_url)]
    env = {"EXCHANGE": names.exchange, "ARCHIVE_QUEUE": names.queue, "DEAD_LETTER_QUEUE": names.dead_letters,
           "EVENT_STORE_URL": store_url, **{key: str(value) for key, value in bench.overrides.items()}}
    return [ProjectProcess("consumer.py", env, bench.folder / f"{names.queue}-{i}.log")
            for i in range(bench.consumers)]


def check_all(children: list) -> None:
    for child in children:
        child.check()


# watching the store -------------------------------------------------------------------------------------
class StoredCount:
    """Asks the store whether it holds N events, cheaply enough to ask every few ms while consumers
    write (see the module docstring)."""

    def __init__(self, store_url: str):
        self.store = open_store(store_url)
        self.sqlite = store_url.startswith("sqlite:")
        self.every = harness.POLL if self.sqlite else ESDB_POLL
        self._seen, self._after = 0, None

    def now(self) -> int:
        """Events stored so far (for SQLite an upper bound: the last position)."""
        if self.sqlite:
            return self.store.last_position()
        for event in self.store.read(EventQuery(after_position=self._after)):
            self._seen, self._after = self._seen + 1, event.position
        return self._seen

    def reached(self, n: int) -> bool:
        return self.now() >= n and (not self.sqlite or self.store.count() >= n)

    def close(self) -> None:
        self.store.close()


# where the CPU goes ------------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds (user + system, from /proc) of the parts of one consumer.py: its connection thread
    (the process's main thread), its writer process (the pid its log names, with WRITER_PROCESS), and
    the RabbitMQ node when exactly one runs on this machine. Parts it cannot see are left out."""

    def __init__(self, consumer: ProjectProcess, writer_process: bool):
        pid = consumer.pid
        self.stats = {"cpu_conn": f"/proc/{pid}/task/{pid}/stat"}
        if writer_process:
            found = wait_until(lambda: _writer_pid(consumer), "the consumer's writer process", timeout=30,
                               every=0.01, check=consumer.check) and _writer_pid(consumer)
            self.stats["cpu_writer"] = f"/proc/{found}/stat"
        brokers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_beam(p)]
        if len(brokers) == 1:
            self.stats["cpu_broker"] = f"{brokers[0]}/stat"
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for key, path in self.stats.items():
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
            out[key] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        return out

    def per_event_us(self, events: int) -> dict[str, float]:
        end = self._now()
        return {key: (end[key] - self.start[key]) / events * 1e6 for key in self.stats}


def _writer_pid(consumer: ProjectProcess) -> int | None:
    found = re.findall(r"storing batches in writer process (\d+)", consumer.log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


def _is_beam(proc: Path) -> bool:
    try:
        return b"beam.smp" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


# one measurement -------------------------------------------------------------------------------------------
def attach_times(bench: Bench, queue: str, children: list) -> list[float]:
    """The monotonic times at which the queue first showed 1, 2, ... len(children) consumers."""
    return [wait_until(lambda k=k: bench.probe.consumers(queue) >= k, f"{k} consumer(s) attached",
                       every=ATTACH_POLL, timeout=120, check=lambda: check_all(children))
            for k in range(1, len(children) + 1)]


def measure(bench: Bench, store_url: str | None) -> dict:
    """One backend (store_url) or the raw drain (None) on fresh names and a fresh store: seconds s,
    rate, and spread/head (backlog) or publish_s (live)."""
    names = Names.fresh()
    names.topology.declare(bench.probe.channel)
    counter = StoredCount(store_url) if store_url else None
    children: list = []
    try:
        if not bench.live:
            publish_backlog(bench.settings.amqp_url, names.exchange, bench.events)
        time.sleep(harness.SETTLE)
        if counter:
            children = start_consumers(bench, names, store_url)

            def finished() -> float:
                return wait_until(lambda: counter.reached(bench.n), f"{bench.n} events stored",
                                  every=counter.every, check=lambda: check_all(children))
        else:
            report = multiprocessing.get_context("spawn").Queue()
            children = [ChildProcess(_raw_drain, (bench.settings.amqp_url, names.queue, bench.n, report))]

            def finished() -> float:
                return report.get(timeout=harness.TIMEOUT)
        attached = attach_times(bench, names.queue, children)
        run = {"spread": attached[-1] - attached[0], "head": 0}
        if bench.live:
            publisher_report = start_live_publisher(bench, names, children)
            ended = finished()
            started, run["publish_s"] = publisher_report()
        else:
            started, run["head"] = attached[-1], counter.now() if counter else 0
            writer_process = bool(bench.overrides.get("WRITER_PROCESS", bench.settings.writer_process))
            meter = (CpuMeter(children[0], writer_process)
                     if counter and len(children) == 1 and isinstance(children[0], ProjectProcess) else None)
            ended = finished()
            if meter:
                run.update(meter.per_event_us(bench.n - run["head"]))
        run["s"] = ended - started
        run["rate"] = (bench.n - run["head"]) / run["s"]
        if counter and counter.sqlite and counter.store.count() != bench.n:
            raise RuntimeError(f"the store holds {counter.store.count()} events, expected {bench.n}")
        return run
    finally:
        harness.cleanup(*(child.stop for child in children), *([counter.close] if counter else []),
                        lambda: bench.probe.delete([names.queue, names.dead_letters], [names.exchange]))


def start_live_publisher(bench: Bench, names: Names, children: list):
    """--live: start the publisher process (the consumers are attached), let it go, and return a
    function that waits for its report: (first publish time, publisher seconds). The report is read
    only after the clock has stopped, so a slow report never delays the stop."""
    spawn = multiprocessing.get_context("spawn")
    ready, go, report = spawn.Event(), spawn.Event(), spawn.Queue()
    publisher = ChildProcess(_live_publisher, (bench.settings.amqp_url, names.exchange, bench.n, ready, go, report))
    children.append(publisher)
    wait_until(ready.is_set, "the publisher to be ready", timeout=300, every=0.05, check=publisher.check)
    go.set()

    def collect() -> tuple[float, float]:
        first, confirmed, elapsed = report.get(timeout=harness.TIMEOUT)
        if confirmed != bench.n:
            raise RuntimeError(f"the publisher had {confirmed} of {bench.n} events confirmed")
        return first, elapsed

    return collect


def backend_key(name: str, consumers: int, counts: tuple[int, ...]) -> str:
    return name if len(counts) == 1 else f"{name}{consumers}"


def one_run(bench: Bench, esdb_url: str | None, counts: tuple[int, ...]) -> dict:
    """Raw drain, then SQLite and EventStoreDB with each number of consumers: one row of the table.
    With several counts, `xK` is the rate with K consumers over the rate with the first count."""
    run = {f"raw_{key}": value for key, value in measure(bench, None).items()}
    for consumers in counts:
        bench.consumers = consumers
        sqlite, esdb = backend_key("sqlite", consumers, counts), backend_key("esdb", consumers, counts)
        with tempfile.TemporaryDirectory(prefix="store-", dir=bench.folder) as folder:
            run.update({f"{sqlite}_{key}": value for key, value in measure(bench, harness.sqlite_url(folder)).items()})
        run[f"{sqlite}_ratio"] = run[f"{sqlite}_rate"] / run["raw_rate"]
        if esdb_url:
            store_url = harness.with_stream_prefix(esdb_url, unique("bench-ingest") + "-")
            run.update({f"{esdb}_{key}": value for key, value in measure(bench, store_url).items()})
            run[f"{esdb}_ratio"] = run[f"{esdb}_rate"] / run["raw_rate"]
        for name in ("sqlite", "esdb") if esdb_url else ("sqlite",):
            first = backend_key(name, counts[0], counts)
            run[f"{backend_key(name, consumers, counts)}_scale"] = (
                run[f"{backend_key(name, consumers, counts)}_rate"] / run[f"{first}_rate"])
    run["load"] = os.getloadavg()[0]
    return run


# output ---------------------------------------------------------------------------------------------------
def columns(bench: Bench, esdb: bool, counts: tuple[int, ...]) -> list[Column]:
    backends = [("raw", "raw drain", 1)]
    for consumers in counts:
        suffix = "" if len(counts) == 1 else f" x{consumers}"
        backends += [(backend_key("sqlite", consumers, counts), f"SQLite{suffix}", consumers)]
        if esdb:
            backends += [(backend_key("esdb", consumers, counts), f"ESDB{suffix}", consumers)]
    cols: list[Column] = []
    for key, name, consumers in backends:
        cols += [Column(f"{key}_s", f"{name} s", harness.seconds), Column(f"{key}_rate", f"{name} /s", harness.rate)]
        if key != "raw":
            cols.append(Column(f"{key}_ratio", f"{name}/raw", harness.share))
        if key != "raw" and len(counts) > 1 and consumers != counts[0]:
            cols.append(Column(f"{key}_scale", f"{name} / x{counts[0]}", lambda value: f"{value:.2f}x"))
        if key != "raw" and consumers == 1 and not bench.live:
            cols += [Column(f"{key}_{part}", f"{name} {title} µs/event", lambda value: f"{value:.0f}")
                     for part, title in (("cpu_conn", "connection thread"), ("cpu_writer", "writer process"),
                                         ("cpu_broker", "RabbitMQ"))]
        if bench.live:
            cols.append(Column(f"{key}_publish_s", f"{name}: publisher s", harness.seconds))
        elif consumers > 1 and key != "raw":
            cols += [Column(f"{key}_spread", f"{name} attach spread s", harness.seconds),
                     Column(f"{key}_head", f"{name} stored before clock", harness.count)]
    return cols + [Column("load", "load avg", lambda value: f"{value:.1f}")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement")
    parser.add_argument("--consumers", default="1",
                        help="competing consumer processes on the queue; a list (1,2,3) measures each in every run")
    parser.add_argument("--live", action="store_true", help="time from the first publish, consumers attached first")
    parser.add_argument("--backlog", action="store_true", help="time draining a full queue (the default)")
    parser.add_argument("--in-process", action="store_true", help="run the ArchiveConsumer in a thread here (1 consumer)")
    parser.add_argument("--batch-size", type=int, help="BATCH_SIZE for the consumers (default: settings)")
    parser.add_argument("--prefetch", type=int, help="PREFETCH for the consumers (default: settings)")
    parser.add_argument("--latency-ms", type=int, help="BATCH_MAX_LATENCY_MS for the consumers (default: settings)")
    parser.add_argument("--writer", choices=("process", "thread"),
                        help="WRITER_PROCESS for the consumers: store in a child process or a thread (default: settings)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; one row each plus the median")
    args = parser.parse_args()
    if args.live and args.backlog:
        parser.error("--live and --backlog exclude each other")
    try:
        args.consumers = tuple(int(part) for part in args.consumers.split(",") if part.strip())
    except ValueError:
        parser.error(f"--consumers takes a number or a list like 1,2,3, not {args.consumers!r}")
    if not args.consumers or min(args.consumers) < 1 or args.events < 1 or args.repeat < 1:
        parser.error("--consumers, --events and --repeat must be at least 1")
    if args.in_process and args.consumers != (1,):
        parser.error("--in-process runs one consumer")
    return args


def main() -> None:
    args = parse_args()
    settings = get_settings()
    configure_logging("WARNING")
    writer = None if args.writer is None else int(args.writer == "process")
    overrides = {name: value for name, value in (("BATCH_SIZE", args.batch_size), ("PREFETCH", args.prefetch),
                                                 ("BATCH_MAX_LATENCY_MS", args.latency_ms),
                                                 ("WRITER_PROCESS", writer)) if value is not None}
    effective = settings.model_copy(update={key.lower(): value for key, value in overrides.items()})
    esdb_url = os.environ.get("ESDB_URL")
    out = harness.console()
    events = harness.simulated_events(args.events)
    probe = BrokerProbe(settings.amqp_url, "bench-ingest-probe")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
            bench = Bench(settings, events, probe, Path(folder), args.consumers[0], args.live, args.in_process,
                          overrides)
            runs = []
            for number in range(1, args.repeat + 1):
                runs.append(one_run(bench, esdb_url, args.consumers))
                rates = ", ".join(f"SQLite x{k} {runs[-1][backend_key('sqlite', k, args.consumers) + '_rate']:,.0f}/s"
                                  for k in args.consumers)
                out.print(f"run {number}/{args.repeat}: {rates}, raw drain {runs[-1]['raw_rate']:,.0f}/s "
                          f"(load average {runs[-1]['load']:.1f})")
    finally:
        probe.close()
    how = ("in-process ArchiveConsumer" if args.in_process
           else f"{'/'.join(map(str, args.consumers))} consumer.py process(es)")
    mode = "first publish -> all stored" if args.live else "backlog: consumers attached -> all stored"
    title = f"ingest of {args.events:,} events, {mode}, vs a raw drain"
    writes = "a writer process" if effective.writer_process else "a writer thread"
    caption = (f"Project: {how} storing through {writes}, batch {effective.batch_size}, prefetch {effective.prefetch}, "
               f"{effective.batch_max_latency_ms} ms; raw drain: one pika consumer, prefetch {RAW_PREFETCH}, ack "
               f"multiple every {RAW_ACK_EVERY}, nothing stored. "
               f"Starts seen by passive declare every {ATTACH_POLL * 1000:.0f} ms; stores polled every "
               f"{harness.POLL * 1000:.0f} ms (SQLite) / {ESDB_POLL * 1000:.0f} ms (ESDB); the raw drain stamps its "
               "own last ack. X/raw = ratio of the rates within the run.")
    out.print(harness.runs_table(title, columns(bench, bool(esdb_url), args.consumers), [("", runs)], caption))


if __name__ == "__main__":
    main()
