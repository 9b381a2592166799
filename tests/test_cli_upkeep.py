"""Keeping the archive in shape from the command line (`python -m eventreplay.cli reindex|prune|archive`,
what `task reindex` / `task prune` / `task archive` run), and the consumer's own periodic prune: on
real stores, the reindex interrupted by a real SIGKILL."""
from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from eventreplay.simulator import EventFactory
from eventreplay.store import EventQuery, open_store
from tests.support.amqp import publish
from tests.support.events import new_event
from tests.support.processes import ROOT, program_env
from tests.support.stores import seed
from tests.support.waiting import wait_for

NOW = datetime.now(timezone.utc)


def cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "eventreplay.cli", *args], cwd=ROOT, env=program_env(**env),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def aged(count: int, days_ago: float, event_type: str = "OrderPlaced", **fields):
    return [new_event(event_type, timestamp=NOW - timedelta(days=days_ago, seconds=i), order_id=f"o{i % 7}",
                      **fields) for i in range(count)]


def test_reindex_makes_an_unindexed_archive_answer_from_the_index(store, store_url):
    seed(store, aged(120, 3))
    done = cli("reindex", "--store", store_url, "--fields", "order_id")
    assert done.returncode == 0, done.stderr
    assert "ready: order_id" in done.stderr
    assert [index.ready for index in store.field_indexes()] == [True]
    assert not store.reads_everything(EventQuery(match={"order_id": "o3"}))
    assert store.count(EventQuery(match={"order_id": "o3"})) == sum(1 for i in range(120) if i % 7 == 3)


def test_a_reindex_killed_midway_continues_where_it_stopped(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_store(url)
    seed(store, aged(250_000, 3), batch=10_000)
    command = [sys.executable, "-m", "eventreplay.cli", "reindex", "--store", url, "--fields", "order_id"]
    process = subprocess.Popen(command, cwd=ROOT, env=program_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (store.field_indexes() or [None])[0] and store.field_indexes()[0].backfilled_to > 0,
                 timeout=60, interval=0.005, what="the reindex under way")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    index = store.field_indexes()[0]
    assert not index.ready, "the reindex finished before it was killed; the test proves nothing"
    done_before_kill = index.backfilled_to

    seed(store, aged(50, 1, order_id_extra="late"))  # ingest goes on meanwhile
    done = cli("reindex", "--store", url, "--fields", "order_id")
    assert done.returncode == 0, done.stderr
    assert f"reindexed {250_000 - done_before_kill:,} positions" in done.stderr  # nothing twice
    assert store.field_indexes()[0].ready
    wanted = [e.position for e in store.read(EventQuery()) if e.payload()["order_id"] == "o5"]
    assert [e.position for e in store.read(EventQuery(match={"order_id": "o5"}))] == wanted
    store.close()


def test_prune_applies_the_retention_settings_and_a_dry_run_deletes_nothing(store, store_url):
    seed(store, aged(30, 40) + aged(20, 40, "UserLoggedIn") + aged(10, 5, "UserLoggedIn") + aged(25, 1))
    retention = {"RETENTION": "30d", "RETENTION_BY_TYPE": "UserLoggedIn=2d"}
    dry = cli("prune", "--store", store_url, "--dry-run", **retention)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 30 events of UserLoggedIn" in dry.stderr
    assert "would delete 30 events of every type except UserLoggedIn" in dry.stderr
    assert store.count() == 85

    done = cli("prune", "--store", store_url, **retention)
    assert done.returncode == 0, done.stderr
    assert "pruned 60 events" in done.stderr
    assert store.counts_by_type() == {"OrderPlaced": 25}

    shown = cli("archive", "--store", store_url, **retention)
    assert "events:        25" in shown.stdout and "UserLoggedIn: 2 days" in shown.stdout


@pytest.mark.parametrize("args, complaint", [
    (["prune", "--older-than", "5x"], "is not a duration"),
    (["prune", "--older-than", "0d"], "longer than zero"),
    (["prune", "--event-type", "OrderPlaced"], "give --older-than with --event-type"),
    (["archive", "--store", "mysql://db/events"], "error:"),
])
def test_bad_input_is_a_clear_error_and_touches_nothing(tmp_path, args, complaint):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_store(url)
    seed(store, aged(10, 40))
    done = cli(*args, *([] if "--store" in args else ["--store", url]))
    assert done.returncode in (1, 2)
    assert complaint in " ".join(done.stderr.split())
    assert store.count() == 10
    store.close()


def test_the_consumer_prunes_by_its_retention_while_it_stores(amqp_url, store, store_url, bound_archive,
                                                           consumer_process):
    seed(store, aged(40, 100) + aged(10, 100, "UserLoggedIn"))
    consumer_process.env.update(RETENTION="30d", PRUNE_INTERVAL_S="1")
    consumer_process.start()
    events = EventFactory(seed=5).take(300)
    publish(amqp_url, bound_archive["exchange"], events)
    wait_for(lambda: store.count() == 300, timeout=60, what="the old events pruned and the new ones stored")
    assert {e.event_id for e in store.read(EventQuery())} == {e.event_id for e in events}
    assert store.span().pruned_before is not None
    consumer_process.signal(signal.SIGTERM)
    assert consumer_process.wait() == 0, consumer_process.output()
