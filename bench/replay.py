"""Replay benchmark: how long a user waits for a replay through the Replay API, beside what raw pika
publishes of the same messages, measured in the same run.

    .venv/bin/python bench/replay.py                     # 60,000 events, 3 runs (+ EventStoreDB if ESDB_URL)
    .venv/bin/python bench/replay.py --events 20000 --repeat 1
    .venv/bin/python bench/replay.py --big 1000000       # also a 1M-event replay: peak RSS, first/last 100k

What is measured, one row per run (`--repeat`, default 3) plus the median:

- Replay API: `python replay_api.py` runs as its own process (a free port, EVENT_STORE_URL a fresh
  SQLite file in a temporary folder). The file is seeded before any clock with --events simulator
  events (EventFactory bodies, AMQP properties and routing keys, stored the way the consumer stores
  them) through the store's own `append`. The clock starts when `POST /replay?wait=true` (every
  event, to a fresh durable queue without x-max-length) is sent, and stops when a passive declare on
  the benchmark's own connection first shows the queue holding all N messages: the moment a
  downstream consumer could have read the last one. The answer of the POST comes later (it waits for
  every confirm and the job's final record); its time and the job's `confirmed` count are shown too.
- Ceiling: raw pika `basic_publish` (BlockingChannel, no confirms) on a fresh connection, from a
  child process, of the same bodies with the same properties a replay puts on the wire (built before
  the clock), to a fresh durable queue; the clock starts at the first publish and stops, as above,
  when the queue holds all N.
- With ESDB_URL: the same API measurement over EventStoreDB (--esdb-events, in a stream prefix of its
  own). The emulator used in development is a slow stand-in: compare its figures only relatively.
- `--big N`: one replay of N SQLite events through a fresh API process: the API process's peak RSS
  (/proc/PID/status VmHWM) and the rate of the first and of the last 100,000 events, from samples
  of the queue depth taken every few milliseconds; then the same N events published raw into a
  fresh queue, sampled the same way, and once more through the ConfirmedPublisher alone, to tell
  the broker's own slowing (as one queue fills; its confirms) from ours.

Both publishers run in processes of their own, so the benchmark's polling never shares their GIL;
all of them share the machine's cores with the broker. Each clock starts after a second of quiet
(the broker deletes the previous queue outside the clock). Queues are deleted afterwards.
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (puts the project on sys.path)
import httpx  # noqa: E402
from harness import BrokerProbe, Column, ProjectProcess, TIMEOUT, unique, wait_until  # noqa: E402

from eventreplay.broker import ConfirmedPublisher, connect, properties_to_dict  # noqa: E402
from eventreplay.logs import configure_logging  # noqa: E402
from eventreplay.replay.messages import replay_properties  # noqa: E402
from eventreplay.schema import parse_event  # noqa: E402
from eventreplay.settings import get_settings  # noqa: E402
from eventreplay.simulator import EventFactory, OutgoingEvent  # noqa: E402
from eventreplay.store import EventQuery, NewEvent, open_store  # noqa: E402

WINDOW = 100_000  # events in the first and last windows of --big


# seeding -------------------------------------------------------------------------------------------
def archived(events: Iterable[OutgoingEvent], exchange: str) -> Iterator[NewEvent]:
    """The simulator's events as the consumer archives them: id, type and timestamp from the
    validated body, the body byte for byte, the AMQP properties in their stored form."""
    received = datetime.now(timezone.utc)
    for event in events:
        parsed = parse_event(event.body)
        yield NewEvent(event_id=parsed.event_id, event_type=parsed.event_type, timestamp=parsed.timestamp,
                       body=event.body, routing_key=event.routing_key, exchange=exchange,
                       received_at=received, properties=properties_to_dict(event.properties))


def seed(store_url: str, count: int, exchange: str, chunk: int = 5000) -> float:
    """Append `count` events through the store's own append, in batches, streaming (a million events
    never sit in memory at once). Returns the seconds it took; untimed by the benchmark itself."""
    started = time.perf_counter()
    stream = archived(itertools.islice(EventFactory(seed=harness.SEED), count), exchange)
    with open_store(store_url) as store:
        while batch := list(itertools.islice(stream, chunk)):
            store.append(batch)
        stored = store.count()
    if stored != count:
        raise RuntimeError(f"seeding stored {stored} events, expected {count}")
    return time.perf_counter() - started


# the Replay API as a process -------------------------------------------------------------------------
class ReplayApi:
    """`python replay_api.py` on a free port over `store_url`, ready (GET /ready = 200) when built.
    No API key and no startup queue: the benchmark's requests are the only ones it serves."""

    def __init__(self, store_url: str, folder: Path):
        port = harness.free_port()
        env = {"API_HOST": "127.0.0.1", "API_PORT": str(port), "EVENT_STORE_URL": store_url,
               "REPLAY_QUEUE": "", "REPLAY_API_KEY": ""}
        self.process = ProjectProcess("replay_api.py", env, folder / f"replay-api-{port}.log")
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=None)
        try:
            wait_until(self._ready, "the Replay API to answer GET /ready", timeout=120, every=0.1,
                       check=self.process.check)
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        try:
            return self.client.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def replay_all(self, queue: str) -> tuple[float, float, dict]:
        """POST /replay?wait=true of every event to `queue`: (sent, answered) monotonic times, job."""
        sent = time.monotonic()
        response = self.client.post("/replay", params={"wait": "true"}, json={"target_queue": queue})
        answered = time.monotonic()
        if response.status_code != 202:
            raise RuntimeError(f"POST /replay answered {response.status_code}: {response.text[:500]}")
        return sent, answered, response.json()

    def close(self) -> None:
        self.client.close()
        self.process.stop()


def time_api_replay(api: ReplayApi, probe: BrokerProbe, events: int,
                    samples: list[tuple[float, int]] | None = None) -> dict:
    """The user's clock: POST sent -> the target queue holds every event. The POST runs in a thread
    (it blocks until the job ends) while this thread watches the queue."""
    queue = unique("bench-replay")
    probe.declare_queue(queue)
    try:
        time.sleep(harness.SETTLE)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(api.replay_all, queue)

            def full() -> bool:
                depth = probe.depth(queue)
                if samples is not None:
                    samples.append((time.monotonic(), depth))
                return depth >= events

            def check() -> None:
                api.process.check()
                if answer.done() and answer.result()[2]["state"] != "completed":
                    raise RuntimeError(f"the replay ended {answer.result()[2]['state']}: {answer.result()[2]}")

            full_at = wait_until(full, f"{events} replayed messages in {queue}", check=check)
            sent, answered, job = answer.result(timeout=TIMEOUT)
    finally:
        probe.delete([queue])
    if job["state"] != "completed":
        raise RuntimeError(f"the replay ended {job['state']}: {job.get('error')}")
    elapsed = full_at - sent
    return {"sent": sent, "full_at": full_at, "s": elapsed, "rate": events / elapsed,
            "answered_s": answered - sent, "confirmed": job["confirmed"]}


# the ceiling ----------------------------------------------------------------------------------------
def _raw_publisher(amqp_url: str, store_url: str, queue: str, ready, go, report, confirmed: bool = False) -> None:
    """Child process: read every stored event and build the properties a replay would send (before
    the clock), then on `go` publish them with plain basic_publish (or, `confirmed`, through the
    project's ConfirmedPublisher with the replay's window, nothing else) and report the first
    publish's monotonic time (one clock for all processes on Linux) and when the last one was
    handed to pika."""
    replay_id = str(uuid.uuid4())
    with open_store(store_url) as store:
        messages = [(event.body, replay_properties(event, replay_id=replay_id)) for event in store.read(EventQuery())]
    connection = connect(amqp_url, client_name="bench-raw-publisher")
    channel = connection.channel()
    ready.set()
    go.wait()
    first = time.monotonic()
    if confirmed:
        publisher = ConfirmedPublisher(connection, window=get_settings().replay_window)
        for body, properties in messages:
            publisher.publish("", queue, body, properties)
        publisher.wait_for_confirms()
    else:
        for body, properties in messages:
            channel.basic_publish("", queue, body, properties)
    report.put((first, time.monotonic()))
    connection.close()


def time_raw_publish(amqp_url: str, store_url: str, probe: BrokerProbe, events: int,
                     samples: list[tuple[float, int]] | None = None, confirmed: bool = False) -> dict:
    """The ceiling's clock: first basic_publish -> the queue holds all N (the same polling as the API)."""
    spawn = multiprocessing.get_context("spawn")
    queue = unique("bench-raw")
    probe.declare_queue(queue)
    ready, go, report = spawn.Event(), spawn.Event(), spawn.Queue()
    child = spawn.Process(target=_raw_publisher, args=(amqp_url, store_url, queue, ready, go, report, confirmed),
                          daemon=True)
    child.start()

    def check() -> None:
        if child.exitcode not in (None, 0):
            raise RuntimeError(f"the raw publisher exited with code {child.exitcode}")

    try:
        wait_until(ready.is_set, "the raw publisher to load its messages", timeout=300, every=0.05, check=check)
        time.sleep(harness.SETTLE)
        go.set()
        def full() -> bool:
            depth = probe.depth(queue)
            if samples is not None:
                samples.append((time.monotonic(), depth))
            return depth >= events

        full_at = wait_until(full, f"{events} raw messages in {queue}", check=check)
        first, last_sent = report.get(timeout=60)
    finally:
        harness.cleanup(lambda: child.join(30), lambda: child.is_alive() and child.terminate(),
                        lambda: probe.delete([queue]))
    elapsed = full_at - first
    return {"raw_s": elapsed, "raw_rate": events / elapsed, "raw_sent_s": last_sent - first, "raw_first": first,
            "raw_full_at": full_at}


# a run, and the --big run ------------------------------------------------------------------------------
def one_run(amqp_url: str, probe: BrokerProbe, sqlite: tuple[str, ReplayApi, int],
            esdb: tuple[str, ReplayApi, int] | None) -> dict:
    """The ceiling, then the API over SQLite (then over EventStoreDB): one row of the table."""
    store_url, api, events = sqlite
    run = time_raw_publish(amqp_url, store_url, probe, events)
    measured = time_api_replay(api, probe, events)
    run.update({f"api_{key}": value for key, value in measured.items()})
    run["ratio"] = run["api_rate"] / run["raw_rate"]
    if esdb is not None:
        _url, esdb_api, esdb_events = esdb
        measured = time_api_replay(esdb_api, probe, esdb_events)
        run.update({f"esdb_{key}": value for key, value in measured.items()})
        run["esdb_ratio"] = run["esdb_rate"] / run["raw_rate"]
    run["load"] = os.getloadavg()[0]
    return run


def crossing(samples: list[tuple[float, int]], depth: int) -> float:
    """The first sample time at which the queue held at least `depth` messages."""
    return next(at for at, seen in samples if seen >= depth)


def big_run(amqp_url: str, probe: BrokerProbe, events: int, exchange: str, folder: Path) -> dict:
    """One replay of `events` SQLite events through a fresh API process: its peak RSS, and the rates
    of the first and of the last WINDOW events from the sampled queue depth."""
    url = harness.sqlite_url(folder, "big.db")
    seeded = seed(url, events, exchange)
    probe.refresh()
    api = ReplayApi(url, folder)
    try:
        before_kb = api.process.status_kb("VmRSS")
        samples: list[tuple[float, int]] = []
        run = time_api_replay(api, probe, events, samples)
        peak_kb = api.process.status_kb("VmHWM")
    finally:
        api.close()
    # the same N messages published raw into a fresh queue of the same kind, sampled the same way:
    # does the broker itself slow down as one queue fills with a million messages?
    # ... and through the project's ConfirmedPublisher alone (no store, no API): the broker's confirms
    window = min(WINDOW, events)
    big = {"events": events, "seeded_s": seeded, "s": run["s"], "rate": run["rate"], "answered_s": run["answered_s"],
           "first_rate": window / (crossing(samples, window) - run["sent"]),
           "last_rate": window / (run["full_at"] - crossing(samples, events - window)),
           "window": window, "rss_before_mb": before_kb / 1024, "peak_mb": peak_kb / 1024}
    for key, confirmed in (("raw", False), ("confirmed", True)):
        raw_samples: list[tuple[float, int]] = []
        probe.refresh()
        raw = time_raw_publish(amqp_url, url, probe, events, raw_samples, confirmed=confirmed)
        big[f"{key}_first_rate"] = window / (crossing(raw_samples, window) - raw["raw_first"])
        big[f"{key}_last_rate"] = window / (raw["raw_full_at"] - crossing(raw_samples, events - window))
    return big


# output -----------------------------------------------------------------------------------------------
def columns(esdb: bool) -> list[Column]:
    cols = [
        Column("raw_s", "raw s", harness.seconds),
        Column("raw_rate", "raw publish /s", harness.rate),
        Column("raw_sent_s", "raw: all handed to pika s", harness.seconds),
        Column("api_s", "API: POST->last in queue s", harness.seconds),
        Column("api_rate", "API /s", harness.rate),
        Column("ratio", "API/raw", harness.share),
        Column("api_answered_s", "POST answered s", harness.seconds),
        Column("api_confirmed", "confirmed", harness.count),
    ]
    if esdb:
        cols += [
            Column("esdb_s", "ESDB API s", harness.seconds),
            Column("esdb_rate", "ESDB API /s", harness.rate),
            Column("esdb_ratio", "ESDB/raw", harness.share),
            Column("esdb_confirmed", "ESDB confirmed", harness.count),
        ]
    return cols + [Column("load", "load avg", lambda value: f"{value:.1f}")]


def print_big(out, big: dict) -> None:
    from rich.table import Table

    table = Table(title=f"replay of {big['events']:,} SQLite events through a fresh Replay API process")
    for title in ("events", "POST->last in queue s", "events/s", f"first {big['window']:,} /s",
                  f"last {big['window']:,} /s", "last/first", "raw: first /s", "last /s", "last/first",
                  "confirmed: first /s", "last /s", "last/first", "POST answered s", "API RSS before MB",
                  "API peak RSS MB"):
        table.add_column(title, justify="right")
    table.add_row(f"{big['events']:,}", harness.seconds(big["s"]), harness.rate(big["rate"]),
                  harness.rate(big["first_rate"]), harness.rate(big["last_rate"]),
                  harness.share(big["last_rate"] / big["first_rate"]),
                  harness.rate(big["raw_first_rate"]), harness.rate(big["raw_last_rate"]),
                  harness.share(big["raw_last_rate"] / big["raw_first_rate"]),
                  harness.rate(big["confirmed_first_rate"]), harness.rate(big["confirmed_last_rate"]),
                  harness.share(big["confirmed_last_rate"] / big["confirmed_first_rate"]),
                  harness.seconds(big["answered_s"]), f"{big['rss_before_mb']:.0f}", f"{big['peak_mb']:.0f}")
    out.print(table)
    out.print(f"seeded in {big['seeded_s']:.0f} s (untimed); peak RSS = VmHWM of the API process over its whole "
              "life; first/last windows from queue-depth samples every "
              f"{harness.POLL * 1000:.0f} ms; raw = the same events published with plain basic_publish (no "
              "confirms) into a fresh queue of the same kind, sampled the same way: how much the broker itself "
              "slows as one queue fills; confirmed = the same through the project's ConfirmedPublisher alone "
              "(REPLAY_WINDOW in flight, no store, no API): the broker's confirms as the queue fills")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000, help="events seeded and replayed per run")
    parser.add_argument("--esdb-events", type=int, default=10_000, help="events of the EventStoreDB runs (ESDB_URL)")
    parser.add_argument("--big", type=int, default=0, help="events of the one large replay (0 = skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; one row each plus the median")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging("WARNING")
    out = harness.console()
    esdb_url = os.environ.get("ESDB_URL")
    probe = BrokerProbe(settings.amqp_url, "bench-replay-probe")
    apis: list[ReplayApi] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder_name:
            folder = Path(folder_name)
            url = harness.sqlite_url(folder)
            took = seed(url, args.events, settings.exchange)
            out.print(f"seeded {args.events:,} SQLite events in {took:.1f} s (untimed)")
            apis.append(ReplayApi(url, folder))
            sqlite = (url, apis[-1], args.events)
            esdb = None
            if esdb_url:
                esdb_store = harness.with_stream_prefix(esdb_url, unique("bench-replay") + "-")
                took = seed(esdb_store, args.esdb_events, settings.exchange, chunk=1000)
                out.print(f"seeded {args.esdb_events:,} EventStoreDB events in {took:.1f} s (untimed)")
                apis.append(ReplayApi(esdb_store, folder))
                esdb = (esdb_store, apis[-1], args.esdb_events)
            runs = []
            for number in range(1, args.repeat + 1):
                runs.append(one_run(settings.amqp_url, probe, sqlite, esdb))
                out.print(f"run {number}/{args.repeat}: API {runs[-1]['api_rate']:,.0f}/s, "
                          f"raw {runs[-1]['raw_rate']:,.0f}/s (load average {runs[-1]['load']:.1f})")
            for api in apis:
                api.close()
            apis.clear()
            title = (f"replay of {args.events:,} events"
                     + (f" (ESDB: {args.esdb_events:,})" if esdb else "")
                     + ": POST /replay?wait=true -> all in the queue, vs raw basic_publish")
            caption = ("API = `python replay_api.py` over a seeded SQLite file; raw = plain basic_publish of the same "
                       "messages, no confirms, from a fresh connection; both to fresh durable unbounded queues. "
                       "'handed to pika' = the raw publisher's own loop; the queue fills later when the broker is the "
                       "bound. Clocks stop when a passive declare (every "
                       f"{harness.POLL * 1000:.0f} ms) first sees all messages in the queue: late by at most one "
                       "interval + one round trip. API/raw = ratio of the rates within the run.")
            out.print(harness.runs_table(title, columns(bool(esdb)), [("", runs)], caption))
            if args.big:
                print_big(out, big_run(settings.amqp_url, probe, args.big, settings.exchange, folder))
    finally:
        for api in apis:
            api.close()
        probe.close()


if __name__ == "__main__":
    main()
