"""A full disk under the SQLite store, for real: a small tmpfs holding the database (the `small_disk`
fixture), filled up with a filler file. Needs root (mounting); skips with the reason where mounting is not permitted.

What must hold: the write probe (not a read) says the store is unavailable and names the disk; the
consumer waits the outage out with the batch in place, so nothing is redelivered while its
connection stays up; afterwards every event is stored exactly once; SIGTERM during the outage exits
0 at once and leaves everything unacked.
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventreplay.api import create_app
from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery, StoreUnavailable, open_store
from eventreplay.store.sqlite import SQLiteEventStore, free_bytes
from tests.support.amqp import declared_archive, publish, queue_depth
from tests.support.api import api_settings
from tests.support.events import series
from tests.support.ingest import consumer_env, consumer_settings, running_consumer
from tests.support.processes import consumer_program
from tests.support.waiting import wait_for

LEFT_FREE = 16 * 1024  # what the filler leaves: room for a probe's page in the WAL, none for a batch
EVENTS = 5000
PREFETCH = 2000


def fill_up(disk: Path) -> Path:
    """A filler file that leaves LEFT_FREE bytes on the disk; delete it to end the outage."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        out.write(b"\0" * (free_bytes(disk) - LEFT_FREE))
    assert free_bytes(disk) <= LEFT_FREE
    return filler


class OutageWatch:
    """A real store, counting the appends and write probes it failed."""

    def __init__(self, store):
        self.store = store
        self.failed_appends = self.failed_probes = 0

    def append(self, events):
        try:
            return self.store.append(events)
        except StoreUnavailable:
            self.failed_appends += 1
            raise

    def probe_write(self):
        try:
            self.store.probe_write()
        except StoreUnavailable:
            self.failed_probes += 1
            raise

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_the_write_probe_reports_a_full_disk_that_reads_and_a_small_write_do_not_notice(small_disk):
    database = small_disk / "events.db"
    # both open their connection (and the WAL's files) while there is room
    with SQLiteEventStore(database) as store, SQLiteEventStore(database, min_free_bytes=0) as no_threshold:
        store.append(series(20))
        filler = fill_up(small_disk)

        store.ping()  # reads need no room: a read says nothing about a full disk
        no_threshold.probe_write()  # nor does a small committed write: one WAL page still fits
        with pytest.raises(StoreUnavailable) as full:
            store.probe_write()
        reason = str(full.value)
        assert re.search(r"disk full: \d+ bytes free", reason) and str(small_disk) in reason, reason
        with pytest.raises(StoreUnavailable, match="disk full"):
            store.check_free_space()
        with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
            store.append(series(500))  # what the probe foretold

        filler.unlink()
        store.probe_write()
        assert store.append(series(500)) == 500


def test_a_full_disk_under_the_consumer_costs_no_redelivery_and_stores_everything_once(
        amqp_url, names, small_disk):
    store_url = f"sqlite:///{small_disk / 'events.db'}"
    events = EventFactory(seed=61).take(EVENTS)
    settings = consumer_settings(amqp_url, store_url, names, prefetch=PREFETCH, batch_size=500)
    # The store is opened (its WAL and shared-memory files made) while there is room, the events
    # are queued, then the disk fills up: the consumer's very first batch meets the full disk.
    with declared_archive(amqp_url, names), open_store(store_url) as real:
        store = OutageWatch(real)
        publish(amqp_url, names["exchange"], events)
        filler = fill_up(small_disk)
        with running_consumer(settings, store) as consumer:
            # Several seconds of outage: the first append fails, then the probes (at 0.5, 1.5, 3.5,
            # 7.5 s) keep saying the disk is full.
            wait_for(lambda: store.failed_probes >= 4, timeout=30, what="four failed write probes")
            assert store.failed_appends >= 1
            assert real.count() == 0 and consumer.stats.stored == 0
            # the consumer holds exactly the prefetch, unacked; the rest waits in the queue
            assert queue_depth(amqp_url, names["archive_queue"]) == EVENTS - PREFETCH
            assert consumer.stats.redelivered == 0  # the connection was kept, not dropped and reopened

            filler.unlink()
            wait_for(lambda: real.count() >= EVENTS and queue_depth(amqp_url, names["archive_queue"]) == 0,
                     timeout=90, what="every event stored once the disk has room")

        ids = [event.event_id for event in real.read(EventQuery())]
    assert len(ids) == len(set(ids)) == EVENTS
    assert set(ids) == {event.event_id for event in events}
    # the bound: with the batch retried in place and the connection kept, not one redelivery
    assert consumer.stats.redelivered == 0 and consumer.stats.duplicates == 0
    assert consumer.stats.stored == EVENTS


def test_sigterm_during_a_disk_full_outage_exits_0_at_once_and_leaves_everything_unacked(
        amqp_url, names, small_disk, tmp_path):
    store_url = f"sqlite:///{small_disk / 'events.db'}"
    events = EventFactory(seed=62).take(1000)
    consumer = consumer_program(consumer_env(amqp_url, store_url, names, PREFETCH=str(PREFETCH)),
                                tmp_path / "consumer.log")
    # The test's store keeps the WAL and shared-memory files in place: a process can open the
    # database on the full disk (it could not create them there).
    with declared_archive(amqp_url, names), open_store(store_url) as store:
        publish(amqp_url, names["exchange"], events)
        filler = fill_up(small_disk)
        try:
            consumer.start()
            wait_for(lambda: "disk full:" in consumer.output(), timeout=30,
                     what="the consumer to wait for the full disk")

            signalled = time.monotonic()
            consumer.signal(signal.SIGTERM)
            assert consumer.wait(timeout=15) == 0, consumer.output()
            assert time.monotonic() - signalled < 3, consumer.output()
        finally:
            consumer.kill()
        output = consumer.output()
        assert "Traceback" not in output and "disk full" in output, output
        # nothing was acked: every message is back in the queue
        wait_for(lambda: queue_depth(amqp_url, names["archive_queue"]) == len(events), timeout=15,
                 what="all 1,000 messages back in the queue")
        assert store.count() == 0
        filler.unlink()


def test_ready_reports_the_full_disk(amqp_url, small_disk):
    app = create_app(api_settings(f"sqlite:///{small_disk / 'events.db'}", amqp_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/ready").json() == {"store": "ok", "broker": "ok"}
        filler = fill_up(small_disk)
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["store"].startswith("unavailable: SQLite store: disk full: "), response.json()
        filler.unlink()
        assert client.get("/ready").status_code == 200
