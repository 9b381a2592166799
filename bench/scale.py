"""Scale benchmark: what the Replay API costs on archives of 100k, 1M and 5M events, whether ingest
keeps its pace with the payload-field index on, and what a prune of 1M expired events does to the
latency of ingest running meanwhile.

    .venv/bin/python bench/scale.py                          # 100k, 1M, 5M; ingest on/off; prune
    .venv/bin/python bench/scale.py --quick                  # 20k and 100k, a shorter prune
    .venv/bin/python bench/scale.py --sizes 1000000 --no-prune --ingest-pairs 0
    .venv/bin/python bench/scale.py --cache-dir /data/bench-scale   # where archives are kept (GBs)

What is measured:

- Archives (untimed by the tables; their build time and rate are printed): N simulator events
  (EventFactory bodies, properties and routing keys, of a seed of their own, so no event id is
  shared with what the prune section publishes), stored the way the consumer stores them (the
  validated body's id, type and timestamp) through SQLiteEventStore.append in batches of 5,000,
  with `order_id`, `user_id` and `product_id` indexed from the first event on (index_fields before
  the first append). Timestamps rise steadily over one year (from 2025-11-01), so a window or a
  retention cutoff selects a real part of it. A child process makes the events while this one
  appends them. Archives are kept in --cache-dir (about 0.75 kB an event: 5M is ~3.7 GB) with a
  small .json beside each; one whose parameters and count match is reused, and the output says so.
- Replay API: `python replay_api.py` as its own process over the archive (a free port,
  EVENT_STORE_URL=sqlite:///..., no API key, no startup queue). Each operation is sent once to warm
  up, then --repeat (3) times; the table shows the median, in ms, of the time the client waits:
  httpx on one kept-alive connection, request sent -> the whole response read, status checked.
  Pages have the API's default limit (50). The order X: the first OrderPlaced event after the
  middle position whose order_id has a whole history (placed, paid, shipped, delivered: 4 events).
  POST /replay?wait=true replays that history (`{"match": {"order_id": X}, "target_queue": Q}`) to
  a fresh durable queue declared before and deleted after each request, outside the clock; the job
  must end completed with every event confirmed. The midpoint is halfway between the archive's
  oldest and newest timestamps; the narrow window is [midpoint, midpoint + 1 h); the cursor page
  starts after the middle position. The targets are checked on the largest archive measured (5M by
  default). Right after a build or a previous section, the file is mostly in the OS page cache:
  these are warm figures.
- Ingest with the index on and off: bench/ingest.py's backlog measurement (its own `measure`: a
  backlog of --ingest-events persistent events published with confirms first, then one
  `python consumer.py` on a fresh SQLite file; clock from the consumer's attach to all stored), run
  with INDEXED_FIELDS="order_id,user_id,product_id" and with INDEXED_FIELDS="", alternately (on,
  off, on, off, ...), --ingest-pairs pairs; the ratio on/off per pair and its median.
- Prune (--prune, on by default): a copy of the largest archive (copied untimed) whose oldest
  --prune-events events (1M) are older than the cutoff. `python consumer.py` archives into it
  (RETENTION unset: it never prunes by itself) while bench/latency.py's publisher sends events at
  --prune-rate (1,000/s) and its store watcher notes when each becomes visible in the store
  (publish -> durably stored, high by at most one ~1 ms look; see bench/latency.py). After
  --prune-warmup s (not counted) and --prune-baseline s of baseline, a child process calls the
  store's own prune(cutoff); p50/p99 are shown for the events published during the baseline,
  during the prune and after it, with the prune's time and rate. The publisher sends for
  --prune-seconds after the baseline; a prune that is not done by then is stopped (its stop event)
  and the table says so.

Everything shares the machine's cores with the broker: see the load average printed per section.
Queues and exchanges have fresh names and are deleted afterwards.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import queue as queue_module
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (puts the project on sys.path)
import ingest  # noqa: E402
import latency  # noqa: E402
import replay  # noqa: E402
from harness import BrokerProbe, Column, ProjectProcess, unique, wait_until  # noqa: E402
from rich.table import Table  # noqa: E402

from eventreplay.broker import CONNECTION_ERRORS  # noqa: E402
from eventreplay.logs import configure_logging  # noqa: E402
from eventreplay.settings import Settings, get_settings  # noqa: E402
from eventreplay.simulator import EventFactory  # noqa: E402
from eventreplay.simulator.events import SteadyClock  # noqa: E402
from eventreplay.store import EventQuery  # noqa: E402
from eventreplay.store.sqlite import SQLiteEventStore  # noqa: E402

ARCHIVE_SEED = harness.SEED + 1  # not the publishers' seed: no archived event id is published again
ARCHIVE_START = datetime(2025, 11, 1, tzinfo=timezone.utc)
ARCHIVE_SPAN = timedelta(days=365)
FIELDS = ("order_id", "user_id", "product_id")
CHUNK = 5000  # events per append while building
FORMAT = 1  # bump when the way archives are built changes: cached ones are then rebuilt
NARROW = timedelta(hours=1)
FULL_HISTORY = 4  # placed, paid, shipped, delivered: the order the requests ask for has them all
SIZES = (100_000, 1_000_000, 5_000_000)
QUICK_SIZES = (20_000, 100_000)
TARGET_SIZE = 5_000_000  # the targets are stated for this size


def label(size: int) -> str:
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{name}"
    return f"{size:,}"


def pass_mark(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[bold red]FAIL[/bold red]"


# building archives ---------------------------------------------------------------------------------------
@dataclass
class Archive:
    size: int
    path: Path
    built_s: float  # seconds the build took (this run, or recorded when it was built)
    cached: bool

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path.resolve()}"


def _params(size: int) -> dict:
    return {"format": FORMAT, "events": size, "seed": ARCHIVE_SEED, "start": ARCHIVE_START.isoformat(),
            "span_s": ARCHIVE_SPAN.total_seconds(), "fields": list(FIELDS), "chunk": CHUNK}


def _produce(size: int, exchange: str, batches) -> None:
    """Child process: the archive's events as the consumer archives them, a batch at a time."""
    clock = SteadyClock(ARCHIVE_START, ARCHIVE_SPAN / size)
    stream = replay.archived(itertools.islice(EventFactory(seed=ARCHIVE_SEED, clock=clock), size), exchange)
    while batch := list(itertools.islice(stream, CHUNK)):
        batches.put(batch)
    batches.put(None)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def build(path: Path, size: int, exchange: str, out) -> float:
    """A fresh archive of `size` events at `path`; returns the seconds it took."""
    _remove(path)
    spawn = multiprocessing.get_context("spawn")
    batches = spawn.Queue(maxsize=8)
    child = spawn.Process(target=_produce, args=(size, exchange, batches), daemon=True)
    started = time.perf_counter()
    child.start()
    try:
        with SQLiteEventStore(path) as store:
            store.index_fields(FIELDS)  # on an empty file: every event is indexed as it is stored
            stored, step = 0, max(size // 10, CHUNK)
            while True:
                try:
                    batch = batches.get(timeout=5)
                except queue_module.Empty:
                    if child.exitcode not in (None, 0):
                        raise RuntimeError(f"the event maker exited with code {child.exitcode}") from None
                    continue
                if batch is None:
                    break
                stored += store.append(batch)
                if stored % step < CHUNK and stored < size:
                    took = time.perf_counter() - started
                    out.print(f"  {label(size)}: {stored:,} stored, {took:.0f} s, {stored / took:,.0f}/s")
            counted = store.count()
    finally:
        child.join(30)
        if child.is_alive():
            child.terminate()
    took = time.perf_counter() - started
    if counted != size:
        raise RuntimeError(f"the {label(size)} archive holds {counted:,} events, expected {size:,}")
    return took


def archive_for(cache_dir: Path, size: int, exchange: str, out) -> Archive:
    """The cached archive of `size` events when its parameters and count match, else a new one."""
    path = cache_dir / f"archive-{size}.db"
    meta = cache_dir / f"archive-{size}.json"
    if path.exists() and meta.exists():
        recorded = json.loads(meta.read_text())
        if recorded.get("params") == _params(size):
            with SQLiteEventStore(path) as store:
                if store.count() == size:
                    out.print(f"{label(size)}: reusing the cached archive {path} ({size:,} events, "
                              f"built earlier in {recorded['built_s']:.0f} s)")
                    return Archive(size, path, recorded["built_s"], cached=True)
        out.print(f"{label(size)}: the cached archive does not match; building it again")
    meta.unlink(missing_ok=True)
    out.print(f"{label(size)}: building {size:,} events into {path}")
    took = build(path, size, exchange, out)
    meta.write_text(json.dumps({"params": _params(size), "built_s": took}))
    out.print(f"{label(size)}: built in {took:.1f} s ({size / took:,.0f} events/s), "
              f"{path.stat().st_size / 1e9:.2f} GB")
    return Archive(size, path, took, cached=False)


# the Replay API at scale --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    key: str
    title: str
    target_s: float | None = None


OPERATIONS = [
    Operation("history", 'GET /events?match={"order_id":X} (one order\'s history)', 0.020),
    Operation("replay", 'POST /replay?wait=true {"match":{"order_id":X}}', 0.100),
    Operation("types", "GET /event-types", 0.005),
    Operation("since", "GET /events?since=<midpoint> (first page)", 0.020),
    Operation("first", "GET /events (first page)"),
    Operation("cursor", "GET /events?after=<middle position> (a cursor page)"),
    Operation("window", "GET /events?since=<midpoint>&until=<+1 h> (narrow window)"),
    Operation("replays", "GET /replays"),
    Operation("archive", "GET /archive (archive span)"),
]


@dataclass
class Sample:
    """What the requests of one archive ask for, found before the API starts."""

    order_id: str
    history: int  # events of that order
    midpoint: datetime
    middle: int  # the middle position


def sample(archive: Archive) -> Sample:
    with SQLiteEventStore(archive.path) as store:
        middle = store.last_position() // 2
        histories = []  # (events, order id) of the first orders placed after the middle
        for placed in store.read(EventQuery(event_types=("OrderPlaced",), after_position=middle, limit=50)):
            order_id = placed.payload()["order_id"]
            histories.append((store.count(EventQuery(match={"order_id": order_id})), order_id))
            if histories[-1][0] >= FULL_HISTORY:
                break
        history, order_id = histories[-1] if histories[-1][0] >= FULL_HISTORY else max(histories)
        span = store.span()
    return Sample(order_id, history, span.oldest + (span.newest - span.oldest) / 2, middle)


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timed(call: Callable[[], None], repeat: int, setup: Callable[[], object] | None = None,
          teardown: Callable[[], object] | None = None) -> list[float]:
    """One warm-up, then `repeat` timed calls (setup/teardown around each, untimed)."""
    times = []
    for number in range(repeat + 1):
        if setup:
            setup()
        try:
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
        finally:
            if teardown:
                teardown()
        if number:
            times.append(elapsed)
    return times


def measure_api(archive: Archive, probe: BrokerProbe, folder: Path, repeat: int, out) -> dict[str, float]:
    """The median seconds of every operation through a fresh `python replay_api.py` process."""
    found = sample(archive)
    out.print(f"{label(archive.size)}: order {found.order_id} ({found.history} events, after position "
              f"{found.middle:,}), midpoint {stamp(found.midpoint)}")
    started = time.perf_counter()
    api = replay.ReplayApi(archive.url, folder)
    out.print(f"{label(archive.size)}: the Replay API answered /ready {time.perf_counter() - started:.1f} s "
              "after its start")
    client = api.client
    match = json.dumps({"order_id": found.order_id})

    def get(path: str, expect_items: int | None = None, **params) -> Callable[[], None]:
        def call() -> None:
            response = client.get(path, params=params)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {response.text[:300]}")
            if expect_items is not None and len(response.json()["items"]) != expect_items:
                raise RuntimeError(f"GET {path} {params} gave {len(response.json()['items'])} events, "
                                   f"expected {expect_items}")
        return call

    target: list[str] = []

    def new_queue() -> None:
        target.append(unique("bench-scale-replay"))
        probe.declare_queue(target[-1])

    def drop_queue() -> None:
        probe.delete([target.pop()])

    def replay_order() -> None:
        response = client.post("/replay", params={"wait": "true"},
                               json={"match": {"order_id": found.order_id}, "target_queue": target[-1]})
        job = response.json()
        if response.status_code != 202 or job.get("state") != "completed" or job.get("confirmed") != found.history:
            raise RuntimeError(f"POST /replay answered {response.status_code}: {response.text[:500]}")

    calls = {
        "history": get("/events", expect_items=found.history, match=match),
        "types": get("/event-types"),
        "since": get("/events", since=stamp(found.midpoint)),
        "first": get("/events"),
        "cursor": get("/events", after=found.middle),
        "window": get("/events", since=stamp(found.midpoint), until=stamp(found.midpoint + NARROW)),
        "replays": get("/replays"),
        "archive": get("/archive"),
    }
    results: dict[str, float] = {}
    try:
        for operation in OPERATIONS:
            if operation.key == "replay":
                times = timed(replay_order, repeat, new_queue, drop_queue)
            else:
                times = timed(calls[operation.key], repeat)
            results[operation.key] = statistics.median(times)
    finally:
        api.close()
    out.print(f"{label(archive.size)}: measured (load average {os.getloadavg()[0]:.1f})")
    return results


def api_table(archives: list[Archive], results: dict[int, dict[str, float]], repeat: int) -> Table:
    checked = max(archive.size for archive in archives)
    caption = ("Pages of 50 (the default limit). X = the first order placed after the middle position with a whole "
               "history (4 events); midpoint = halfway between the oldest and newest timestamps; replay to a fresh "
               f"durable queue (declared and deleted outside the clock). Targets checked on {label(checked)}"
               + ("" if checked == TARGET_SIZE else f" (they are stated for {label(TARGET_SIZE)})") + ".")
    table = Table(title=f"Replay API at scale: median ms of {repeat} requests after one warm-up, as the client waits "
                        "(python replay_api.py over SQLite)", caption=caption,
                  caption_justify="left")
    table.add_column("operation", justify="left")
    for archive in archives:
        table.add_column(label(archive.size), justify="right")
    table.add_column("target", justify="right")
    table.add_column(f"at {label(checked)}", justify="center")
    for operation in OPERATIONS:
        cells = [harness.millis(results[archive.size][operation.key]) for archive in archives]
        if operation.target_s is None:
            target, mark = "", ""
        else:
            target = f"< {operation.target_s * 1000:.0f}"
            mark = pass_mark(results[checked][operation.key] < operation.target_s)
        table.add_row(operation.title, *cells, target, mark)
    return table


# ingest with the index on and off -----------------------------------------------------------------------
def ingest_pairs(settings: Settings, probe: BrokerProbe, folder: Path, events: int, pairs: int, out) -> list[dict]:
    """bench/ingest.py's backlog measurement, index on then off, `pairs` times."""
    bench_events = harness.simulated_events(events)
    runs = []
    for number in range(1, pairs + 1):
        run: dict = {}
        for key, fields in (("on", ",".join(FIELDS)), ("off", "")):
            overrides = {"INDEXED_FIELDS": fields, "RETENTION": "", "RETENTION_BY_TYPE": ""}
            bench = ingest.Bench(settings, bench_events, probe, folder, overrides=overrides)
            with tempfile.TemporaryDirectory(prefix="ingest-", dir=folder) as store_folder:
                measured = ingest.measure(bench, harness.sqlite_url(store_folder))
            run[f"{key}_s"], run[f"{key}_rate"] = measured["s"], measured["rate"]
        run["ratio"] = run["on_rate"] / run["off_rate"]
        run["load"] = os.getloadavg()[0]
        runs.append(run)
        out.print(f"ingest pair {number}/{pairs}: index on {run['on_rate']:,.0f}/s, off {run['off_rate']:,.0f}/s, "
                  f"on/off {run['ratio']:.0%} (load average {run['load']:.1f})")
    return runs


INGEST_COLUMNS = [
    Column("on_s", "index on s", harness.seconds),
    Column("on_rate", "index on /s", harness.rate),
    Column("off_s", "index off s", harness.seconds),
    Column("off_rate", "index off /s", harness.rate),
    Column("ratio", "on/off", harness.share),
    Column("load", "load avg", lambda value: f"{value:.1f}"),
]


# prune while ingest runs ------------------------------------------------------------------------------------
def _prune(path: str, cutoff: datetime, go, stop, report) -> None:
    """Child process: on `go`, the store's own prune(cutoff); reports (start, end, deleted, stopped)."""
    with SQLiteEventStore(path) as store:
        go.wait()
        started = time.monotonic()
        deleted = store.prune(cutoff, stop=stop)  # a multiprocessing Event has the is_set() prune asks
        report.put((started, time.monotonic(), deleted, stop.is_set()))


def prune_cutoff(archive: Archive, events: int) -> tuple[datetime, int]:
    """The cutoff before which the archive's oldest `events` events lie (all of them when it holds no
    more), and how many events are older than it."""
    with SQLiteEventStore(archive.path) as store:
        if archive.size > events:
            cutoff = next(iter(store.read(EventQuery(after_position=events, limit=1)))).timestamp
        else:
            cutoff = store.span().newest + timedelta(microseconds=1)
        return cutoff, store.count(EventQuery(until=cutoff))


def _look_p99(looks: list[float], low: float, high: float) -> float:
    inside = [at for at in looks if low <= at < high]
    return harness.percentile(sorted(b - a for a, b in zip(inside, inside[1:])), 0.99)


def delete_topology(probe: BrokerProbe, settings: Settings, topology) -> None:
    """Delete a section's queues and exchange, on a fresh connection if the probe's was lost."""
    queues, exchanges = [topology.queue, topology.dead_letter_queue], [topology.exchange]
    try:
        probe.delete(queues, exchanges)
    except CONNECTION_ERRORS:
        fresh = BrokerProbe(settings.amqp_url, "bench-scale-cleanup")
        try:
            fresh.delete(queues, exchanges)
        finally:
            fresh.close()


def prune_run(args, settings: Settings, probe: BrokerProbe, source: Archive, folder: Path, out) -> dict:
    cutoff, expired = prune_cutoff(source, args.prune_events)
    topology = latency.fresh_topology(probe)
    spawn = multiprocessing.get_context("spawn")
    go, stop, report = spawn.Event(), spawn.Event(), spawn.Queue()
    with tempfile.TemporaryDirectory(prefix="prune-", dir=folder) as work:
        path = Path(work) / "events.db"
        started = time.perf_counter()
        for suffix in ("", "-wal"):  # a closed store has no -wal; copied if some process holds it open
            if Path(f"{source.path}{suffix}").exists():
                shutil.copyfile(f"{source.path}{suffix}", f"{path}{suffix}")
        copy_s = time.perf_counter() - started
        out.print(f"prune: copied the {label(source.size)} archive in {copy_s:.1f} s; {expired:,} events are older "
                  f"than the cutoff {stamp(cutoff)}")
        url = harness.sqlite_url(work)
        env = {"EXCHANGE": topology.exchange, "ARCHIVE_QUEUE": topology.queue,
               "DEAD_LETTER_QUEUE": topology.dead_letter_queue, "EVENT_STORE_URL": url,
               "INDEXED_FIELDS": ",".join(FIELDS), "RETENTION": "", "RETENTION_BY_TYPE": ""}
        consumer = ProjectProcess("consumer.py", env, folder / f"{topology.queue}.log")
        watcher = latency.StoreWatcher(url)
        pruner = spawn.Process(target=_prune, args=(str(path), cutoff, go, stop, report), daemon=True)
        published: dict[str, float] = {}
        failure: list[BaseException] = []

        def publish(publisher: latency.Publisher) -> None:
            try:
                published.update(publisher.run()[0])
            except BaseException as error:  # noqa: BLE001 - raised in the main thread
                failure.append(error)

        def check() -> None:
            # the probe waits minutes here unused: serve its heartbeats, or the broker drops it
            probe.connection.process_data_events(time_limit=0)
            consumer.check()
            watcher.check()
            if pruner.exitcode not in (None, 0):
                raise RuntimeError(f"the prune process exited with code {pruner.exitcode}")
            if failure:
                raise failure[0]

        try:
            wait_until(lambda: probe.consumers(topology.queue) >= 1, "the consumer to attach", timeout=300,
                       check=consumer.check)
            watcher.start()
            pruner.start()
            count = round(args.prune_rate * (args.prune_warmup + args.prune_baseline + args.prune_seconds))
            publisher = latency.Publisher(settings.amqp_url, topology.exchange, args.prune_rate, count)
            sender = threading.Thread(target=publish, args=(publisher,), daemon=True)
            began = time.monotonic()
            sender.start()
            wait_until(lambda: time.monotonic() >= began + args.prune_warmup + args.prune_baseline,
                       "the end of the baseline", every=0.05, check=check)
            go.set()
            out.print(f"prune: {args.prune_warmup + args.prune_baseline:g} s of warm-up and baseline at "
                      f"{args.prune_rate:g}/s done; pruning")
            wait_until(lambda: not sender.is_alive(), "the publisher to finish", every=0.1, check=check,
                       timeout=args.prune_seconds + harness.TIMEOUT)
            stop.set()  # the publishing is over: a prune still running stops here
            check()
            prune_started, prune_ended, deleted, stopped = report.get(timeout=120)
            wait_until(lambda: len(watcher.seen) >= len(published), f"{len(published)} events stored",
                       timeout=latency.DRAIN_TIMEOUT, check=check)
            looks = list(watcher.looks)
            with SQLiteEventStore(path) as store:
                held = store.count()
        finally:
            harness.cleanup(watcher.stop, consumer.stop, lambda: pruner.join(30),
                            lambda: pruner.is_alive() and pruner.terminate(),
                            lambda: delete_topology(probe, settings, topology))
    if held != source.size - deleted + len(published):
        raise RuntimeError(f"the pruned archive holds {held:,} events, expected "
                           f"{source.size - deleted + len(published):,}")
    first = min(published.values())
    periods = {"baseline": (first + args.prune_warmup, prune_started), "during the prune": (prune_started, prune_ended),
               "after the prune": (prune_ended, float("inf"))}
    rows = {}
    for name, (low, high) in periods.items():
        chosen = {key: at for key, at in published.items() if low <= at < high}
        rows[name] = latency.latencies(chosen, watcher.seen, 0.0)
        rows[name]["look_p99"] = _look_p99(looks, low, min(high, looks[-1] + 1))
    return {"rows": rows, "deleted": deleted, "expired": expired, "stopped": stopped,
            "prune_s": prune_ended - prune_started, "copy_s": copy_s, "cutoff": cutoff, "source": source,
            "load": os.getloadavg()[0]}


def prune_table(result: dict, rate: float) -> Table:
    table = Table(title=f"ingest at {rate:,.0f} events/s (consumer.py) while {result['deleted']:,} expired events "
                        f"of the {label(result['source'].size)} archive are pruned: publish -> durably stored",
                  caption=("Rows: events by their publish time. look p99 = the store watcher's p99 interval between "
                           "looks in that period (the figures are high by up to one look). The prune: the store's "
                           "prune(cutoff) in a process of its own."), caption_justify="left")
    for title in ("period", "events", "p50 ms", "p90 ms", "p99 ms", "max ms", "look p99 ms", "missing"):
        table.add_column(title, justify="right" if title != "period" else "left")
    for name, row in result["rows"].items():
        table.add_row(name, harness.count(row["counted"]), harness.millis(row["p50"]), harness.millis(row["p90"]),
                      harness.millis(row["p99"]), harness.millis(row["max"]), f"{row['look_p99'] * 1000:.2f}",
                      harness.count(row["missing"]))
    return table


# main --------------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="archive sizes, comma-separated (default 100000,1000000,5000000)")
    parser.add_argument("--quick", action="store_true", help="sizes 20000,100000 and a shorter prune section")
    parser.add_argument("--cache-dir", type=Path, default=harness.ROOT / ".run" / "bench-scale",
                        help="where the archives are kept and reused, and the runs' temporary files")
    parser.add_argument("--repeat", type=int, default=3, help="timed requests per operation (median shown)")
    parser.add_argument("--ingest-events", type=int, default=30_000, help="backlog per ingest measurement")
    parser.add_argument("--ingest-pairs", type=int, default=3, help="index on/off pairs (0 = skip)")
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True,
                        help="the prune-while-ingesting section (default on)")
    parser.add_argument("--prune-events", type=int, default=1_000_000, help="expired events to prune")
    parser.add_argument("--prune-rate", type=float, default=1000.0, help="events/s published meanwhile")
    parser.add_argument("--prune-warmup", type=float, default=3.0, help="seconds published first, not counted")
    parser.add_argument("--prune-baseline", type=float, default=20.0, help="seconds measured before the prune")
    parser.add_argument("--prune-seconds", type=float, default=360.0,
                        help="seconds published after the baseline; the prune is stopped if it runs longer")
    args = parser.parse_args()
    if args.sizes and args.quick:
        parser.error("--sizes and --quick exclude each other")
    try:
        args.sizes = tuple(int(size) for size in args.sizes.split(",")) if args.sizes else (
            QUICK_SIZES if args.quick else SIZES)
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas, e.g. 100000,1000000")
    if args.quick:
        args.prune_events, args.prune_baseline, args.prune_seconds = 50_000, 10.0, 30.0
    if min(args.sizes) < 10 or args.repeat < 1 or args.ingest_pairs < 0:
        parser.error("sizes must be at least 10 events, --repeat at least 1, --ingest-pairs at least 0")
    return args


def main() -> None:
    args = parse_args()
    wall = time.perf_counter()
    settings = get_settings()
    configure_logging("WARNING")
    out = harness.console()
    cache_dir = args.cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    archives = [archive_for(cache_dir, size, settings.exchange, out) for size in sorted(set(args.sizes))]
    built = Table(title="archives (SQLiteEventStore.append, batches of 5,000, 3 fields indexed at insert)")
    for title in ("events", "file GB", "build s", "events/s", ""):
        built.add_column(title, justify="right")
    for archive in archives:
        built.add_row(f"{archive.size:,}", f"{archive.path.stat().st_size / 1e9:.2f}", f"{archive.built_s:.1f}",
                      harness.rate(archive.size / archive.built_s), "cached" if archive.cached else "built now")
    out.print(built)
    probe = BrokerProbe(settings.amqp_url, "bench-scale-probe")
    try:
        with tempfile.TemporaryDirectory(prefix="run-", dir=cache_dir) as folder_name:
            folder = Path(folder_name)
            results = {archive.size: measure_api(archive, probe, folder, args.repeat, out) for archive in archives}
            out.print(api_table(archives, results, args.repeat))
            if args.ingest_pairs:
                runs = ingest_pairs(settings, probe, folder, args.ingest_events, args.ingest_pairs, out)
                out.print(harness.runs_table(
                    f"ingest of {args.ingest_events:,} events (bench/ingest.py backlog, one consumer.py, fresh SQLite "
                    "file): INDEXED_FIELDS=order_id,user_id,product_id vs INDEXED_FIELDS=\"\", alternately",
                    INGEST_COLUMNS, [("pair ", runs)],
                    "on/off = ratio of the rates within the pair; the median row is the median of each column."))
                ratio = statistics.median(run["ratio"] for run in runs)
                out.print(f"target: ingest with the index on >= 85% of ingest with it off: median on/off "
                          f"{ratio:.0%} {pass_mark(ratio >= 0.85)}")
            if args.prune:
                result = prune_run(args, settings, probe, archives[-1], folder, out)
                out.print(prune_table(result, args.prune_rate))
                growth = result["rows"]["during the prune"]["p99"] - result["rows"]["baseline"]["p99"]
                done = "stopped at the end of the publishing: " if result["stopped"] else ""
                out.print(f"prune: {done}{result['deleted']:,} of {result['expired']:,} expired events deleted in "
                          f"{result['prune_s']:.1f} s ({result['deleted'] / result['prune_s']:,.0f} events/s); "
                          f"load average {result['load']:.1f}")
                out.print(f"target: p99 grows by less than 50 ms during the prune: {growth * 1000:+.1f} ms "
                          f"{pass_mark(growth < 0.050 and not result['stopped'])}")
    finally:
        probe.close()
    out.print(f"total wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
