"""Replay benchmark: events/s of a replay to a queue (publisher confirms, pipelined) per store
backend, beside the raw pika publish ceiling (the same bodies, plain basic_publish, no confirms)
measured in the same run, and the peak memory of a replay of 1,000,000 SQLite events.

    .venv/bin/python bench/replay.py                      # 100,000 events; + EventStoreDB if ESDB_URL
    .venv/bin/python bench/replay.py --events 20000 --big 0   # quick, without the 1M memory run

Target queues are bounded (x-max-length, drop-head) so that a benchmark never fills the broker's
memory; dropping the head costs the broker next to nothing and the publisher sees the same confirms.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika  # noqa: E402

from eventreplay.broker import connect, event_properties, properties_to_dict  # noqa: E402
from eventreplay.replay.engine import ReplayEngine  # noqa: E402
from eventreplay.backends import Backend  # noqa: E402
from eventreplay.replay.spec import ReplaySpec  # noqa: E402
from eventreplay.settings import Settings  # noqa: E402
from eventreplay.store import EventQuery, NewEvent, open_store  # noqa: E402

QUEUE_ARGS = {"x-max-length": 10_000, "x-overflow": "drop-head"}


def make_events(count: int):
    from datetime import datetime, timedelta, timezone

    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for i in range(count):
        event_id = str(uuid.uuid4())
        at = start + timedelta(milliseconds=i)
        body = json.dumps({
            "event_id": event_id, "event_type": "OrderPlaced", "timestamp": at.replace(tzinfo=None).isoformat(),
            "order_id": f"ORD-{i}", "user_id": f"U-{i % 1000}", "total_amount": 42.5, "currency": "EUR",
            "items": [{"product_id": f"P-{i % 97}", "quantity": 1, "price": 42.5}],
        }).encode()
        props = properties_to_dict(event_properties(event_id=event_id, event_type="OrderPlaced", timestamp=at.timestamp()))
        yield NewEvent(event_id=event_id, event_type="OrderPlaced", timestamp=at, body=body, routing_key="order-events",
                       exchange="ecommerce-exchange", received_at=at, properties=props)


def seed(store, count: int, batch: int = 5000) -> float:
    started = time.perf_counter()
    chunk = []
    for event in make_events(count):
        chunk.append(event)
        if len(chunk) == batch:
            store.append(chunk)
            chunk = []
    if chunk:
        store.append(chunk)
    return time.perf_counter() - started


def declare(amqp_url: str, queue: str) -> None:
    connection = connect(amqp_url, client_name="bench-replay")
    connection.channel().queue_declare(queue, arguments=QUEUE_ARGS)
    connection.close()


def delete(amqp_url: str, queue: str) -> None:
    connection = connect(amqp_url, client_name="bench-replay")
    connection.channel().queue_delete(queue)
    connection.close()


def raw_ceiling(amqp_url: str, bodies: list[bytes]) -> float:
    """Plain basic_publish of the same bodies, no confirms: what pika can push on one connection."""
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    declare(amqp_url, queue)
    connection = connect(amqp_url, client_name="bench-raw")
    channel = connection.channel()
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    try:
        started = time.perf_counter()
        for body in bodies:
            channel.basic_publish("", queue, body, properties)
        connection.process_data_events(time_limit=0)
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
        delete(amqp_url, queue)
    return len(bodies) / elapsed


def replay_rate(store_url: str, store, amqp_url: str) -> tuple[float, int]:
    queue = f"bench-replay-{uuid.uuid4().hex[:8]}"
    declare(amqp_url, queue)
    backend = Backend(store_url)
    try:
        engine = ReplayEngine(backend.events(), backend.jobs(), amqp_url)
        job = engine.submit(ReplaySpec(event_type="OrderPlaced", target_queue=queue))
        job = engine.wait(job.id)
        if job.state.value != "completed":
            raise SystemExit(f"replay ended {job.state.value}: {job.error}")
        seconds = (job.ended_at - job.started_at).total_seconds()
        return job.confirmed / seconds, job.confirmed
    finally:
        backend.close()
        delete(amqp_url, queue)


def peak_memory_child(store_url: str, amqp_url: str) -> None:
    """Run one replay in this (fresh) process and print its peak RSS."""
    store = open_store(store_url)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rate, count = replay_rate(store_url, store, amqp_url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.close()
    print(json.dumps({"events": count, "rate": rate, "peak_mb": peak / 1024, "before_mb": before / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per backend for the rate")
    parser.add_argument("--esdb-events", type=int, default=None, help="events for EventStoreDB (default: --events)")
    parser.add_argument("--big", type=int, default=1_000_000, help="events of the SQLite memory run (0 = skip)")
    parser.add_argument("--peak-child", metavar="STORE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = Settings()
    amqp_url = settings.amqp_url
    if args.peak_child:
        peak_memory_child(args.peak_child, amqp_url)
        return

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        url = f"sqlite:///{folder}/events.db"
        with open_store(url) as store:
            seeded = seed(store, args.events)
            bodies = [event.body for event in store.read(EventQuery())]
            ceiling = raw_ceiling(amqp_url, bodies)
            rate, count = replay_rate(url, store, amqp_url)
        del bodies
        rows.append(("raw pika publish, no confirms (ceiling)", f"{args.events:,}", f"{ceiling:,.0f}"))
        rows.append(("replay to queue, confirms, SQLite", f"{count:,}", f"{rate:,.0f} ({rate / ceiling:.0%} of ceiling)"))
        print(f"seeded {args.events:,} SQLite events in {seeded:.1f} s", file=sys.stderr)

    esdb_url = os.environ.get("ESDB_URL")
    if esdb_url:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(esdb_url)
        query = parse_qsl(parts.query) + [("streamPrefix", f"bench-{uuid.uuid4().hex[:8]}-")]
        url = urlunsplit(parts._replace(query=urlencode(query)))
        n = args.esdb_events or args.events
        with open_store(url) as store:
            seed(store, n, batch=1000)
            rate, count = replay_rate(url, store, amqp_url)
        rows.append(("replay to queue, confirms, EventStoreDB", f"{count:,}", f"{rate:,.0f} ({rate / ceiling:.0%} of ceiling)"))

    if args.big:
        with tempfile.TemporaryDirectory(prefix="bench-replay-big-") as folder:
            url = f"sqlite:///{folder}/events.db"
            with open_store(url) as store:
                seeded = seed(store, args.big)
            print(f"seeded {args.big:,} SQLite events in {seeded:.1f} s", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "--peak-child", url], check=True,
                                 capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((f"replay of {result['events']:,} SQLite events", f"{result['events']:,}",
                     f"{result['rate']:,.0f}; peak RSS {result['peak_mb']:.0f} MB (process before replay "
                     f"{result['before_mb']:.0f} MB)"))

    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure':<{width}} | events | events/s |")
    print(f"| {'-' * width} | --- | --- |")
    for name, count, value in rows:
        print(f"| {name:<{width}} | {count} | {value} |")


if __name__ == "__main__":
    main()
