"""Replays under real faults, each counting what arrived in the target queue:

- the API process killed (SIGKILL) at several moments and restarted: the new process takes the job
  over by itself; every event arrives, in order, each takeover re-sends at most the stated bound
  (docs/api.md "Guarantees"), digest as uninterrupted;
- the SQLite store locked across the end of a job: the job ends completed with exact counts, and
  its state never seems to go back;
- the store locked while a job runs: it never gets more than the bound ahead of its record;
- RabbitMQ restarted (stop_app / start_app) mid-replay: the job completes by itself;
- RabbitMQ down longer than the give-up time: the job fails saying so, and a resume completes it;
- EventStoreDB restarted mid-replay: the job completes by itself.
"""
from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
from fastapi.testclient import TestClient

from eventreplay.api import create_app
from eventreplay.replay.job_records.sqlite import SQLiteJobRepository
from eventreplay.store import EventQuery, open_store
from tests.support.amqp import consume_message_ids, declare_queue, delete_queue, queue_depth
from tests.support.api import ENDED, api_settings, wait_job
from tests.support.events import new_event
from tests.support.names import unique
from tests.support.processes import ROOT, free_port, start_api
from tests.support.replays import assert_resumed_delivery, store_order
from tests.support.stores import private_esdb_url, seed
from tests.support.waiting import wait_for

WINDOW, CHECKPOINT_EVERY = 1000, 1000
BOUND = WINDOW + CHECKPOINT_EVERY  # what docs/api.md states with these settings
LEASE_S = 2  # JOB_LEASE_S: a killed instance's job is taken over after this long
STATE_ORDER = {"pending": 0, "running": 1, "completed": 2}


@pytest.mark.slow
def test_sigkill_at_several_moments_the_restarted_api_takes_over_resending_at_most_the_bound(
        store_url, store, amqp_url, names, tmp_path):
    esdb = store_url.startswith("esdb")
    count, kill_at, body = (
        (5_000, (1_000, 2_500, 4_000), {"rate": 2_000}) if esdb else (100_000, (15_000, 45_000, 75_000), {})
    )
    seed(store, (new_event("OrderPlaced", n=i) for i in range(count)), batch=5_000)
    ids, index_of_position, bodies = store_order(store)
    queue = names["target_queue"]
    declare_queue(amqp_url, queue)
    env = {"REPLAY_WINDOW": str(WINDOW), "REPLAY_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY), "LOG_LEVEL": "INFO",
           "JOB_LEASE_S": str(LEASE_S)}
    api = start_api(store_url, amqp_url, tmp_path / "api-1.log", **env)
    resumed_after: list[int] = []
    try:
        response = api.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, **body})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        for run, threshold in enumerate(kill_at, 2):
            wait_for(lambda: queue_depth(amqp_url, queue) >= threshold, timeout=120, interval=0.02,
                     what=f"{threshold} messages in the target queue")
            api.kill()
            api.stop()
            api = start_api(store_url, amqp_url, tmp_path / f"api-{run}.log", **env)
            # the killed instance's record, as it left it: still running, under the dead owner
            orphan = api.client.get(f"/replays/{job_id}").json()
            assert orphan["state"] in ("pending", "running") and orphan["runs"] == run - 1, orphan
            resumed_after.append(index_of_position[orphan["last_position"]])
            # nobody resumes it: the new instance takes it over once its lease expired
            wait_for(lambda: api.client.get(f"/replays/{job_id}").json()["runs"] == run, timeout=60,
                     what=f"run {run} of the job, taken over by the restarted API")
        done = wait_job(api.client, job_id, timeout=180)
        assert done["state"] == "completed", done
        assert done["confirmed"] == done["matched"] == count and done["runs"] == len(kill_at) + 1
        assert done["takeovers"] == len(kill_at)
        assert done["digest"] == hashlib.sha256(bodies).hexdigest(), "the digest of an uninterrupted replay"

        received = consume_message_ids(amqp_url, queue, at_least=count)
        assert_resumed_delivery(received, ids, resumed_after, BOUND)
    finally:
        api.stop()
        delete_queue(amqp_url, queue)


# the SQLite store locked ------------------------------------------------------------------------


@contextmanager
def sqlite_locked(path: Path):
    """Another process's way of locking the store: a write transaction held open (readers still
    read; every writer waits out its busy timeout, then fails)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def recorded_job(path: Path, job_id: str):
    jobs = SQLiteJobRepository(path)
    try:
        return jobs.get(job_id)
    finally:
        jobs.close()


class StateWatcher:
    """Polls GET /replays/{id} in a thread and remembers every state seen, in order."""

    def __init__(self, api, job_id: str):
        self.states: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(api, job_id), daemon=True)
        self._thread.start()

    def _watch(self, api, job_id: str) -> None:
        while not self._stop.wait(0.05):
            state = api.get(f"/replays/{job_id}").json()["state"]
            if not self.states or self.states[-1] != state:
                self.states.append(state)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.states


@pytest.mark.slow
def test_a_store_locked_across_the_end_of_a_job_keeps_its_final_state_and_records_it_later(
        sqlite_api, amqp_url, target_queue, caplog):
    api = sqlite_api
    seed(api.app.state.services.store(), [new_event("OrderPlaced", n=i) for i in range(3000)])
    job = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": target_queue, "rate": 1000}).json()
    watcher = StateWatcher(api, job["id"])
    wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 2200, what="2,200 confirmed")
    with sqlite_locked(api.db_path):
        # the job ends while its record cannot be written: the API shows what happened ...
        ended = wait_for(lambda: (j := api.get(f"/replays/{job['id']}").json())["state"] in ENDED and j,
                         timeout=30, what="the job to end in memory")
        assert ended["state"] == "completed" and ended["confirmed"] == 3000, ended
        # ... while a save fails for real (the repository waits 10 s for the lock, then retries)
        # and the store still holds the last progress it took
        wait_for(lambda: f"replay {job['id']}: could not record its state" in caplog.text, timeout=40,
                 what="a save of the final state to fail on the lock")
        assert recorded_job(api.db_path, job["id"]).state.value == "running"
        assert api.get(f"/replays/{job['id']}").json()["state"] == "completed"
        assert api.post(f"/replays/{job['id']}/cancel").status_code == 409
        assert api.post(f"/replays/{job['id']}/resume").status_code == 409
    recorded = wait_for(lambda: (j := recorded_job(api.db_path, job["id"])).state.value == "completed" and j,
                        timeout=30, what="the final state recorded once the lock is gone")
    assert recorded.confirmed == recorded.matched == 3000 and recorded.published == 3000
    assert api.get(f"/replays/{job['id']}").json()["state"] == "completed"
    states = watcher.stop()
    assert [STATE_ORDER[s] for s in states] == sorted(STATE_ORDER[s] for s in states), states
    assert queue_depth(amqp_url, target_queue) == 3000  # nothing sent twice


@pytest.mark.slow
@pytest.mark.parametrize("sqlite_api", [{"replay_window": 100, "replay_checkpoint_every": 100}], indirect=True)
def test_a_job_never_gets_more_than_the_bound_ahead_of_its_record(sqlite_api, amqp_url, target_queue):
    api, bound = sqlite_api, 200
    seed(api.app.state.services.store(), [new_event("OrderPlaced", n=i) for i in range(3000)])
    job = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": target_queue, "rate": 1000}).json()
    wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 500, what="500 confirmed")
    with sqlite_locked(api.db_path):
        recorded = recorded_job(api.db_path, job["id"]).confirmed  # what a crash now would leave
        waiting = wait_for(lambda: (j := api.get(f"/replays/{job['id']}").json())["reconnecting"] and j,
                           timeout=30, what="the job to say it waits to record its progress")
        assert waiting["state"] == "running" and "record progress" in waiting["reconnecting"], waiting
        assert queue_depth(amqp_url, target_queue) <= recorded + bound
    done = wait_job(api, job["id"], timeout=60)
    assert done["state"] == "completed" and done["confirmed"] == 3000 and done["reconnecting"] is None, done
    assert queue_depth(amqp_url, target_queue) == 3000


# broker faults ----------------------------------------------------------------------------------


def durable_queue(amqp_url: str) -> str:
    """A durable queue (it outlives a broker restart, with its persistent messages)."""
    queue = unique("replay-target")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(queue, durable=True)
    finally:
        connection.close()
    return queue


@pytest.mark.slow
def test_a_replay_rides_out_a_broker_restart_and_completes_by_itself(tmp_path, private_broker):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    app = create_app(api_settings(url, private_broker.amqp_url))
    with TestClient(app, raise_server_exceptions=False) as api:
        store = api.app.state.services.store()
        seed(store, [new_event("OrderPlaced", n=i) for i in range(20_000)], batch=5_000)
        ids, _, bodies = store_order(store)
        queue = durable_queue(private_broker.amqp_url)
        job = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, "rate": 4000}).json()
        wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 4000, what="4,000 confirmed")
        private_broker.stop_app()
        down = wait_for(lambda: (j := api.get(f"/replays/{job['id']}").json())["reconnecting"] and j,
                        timeout=30, what="the job to show it is reconnecting")
        assert down["state"] == "running" and "broker" in down["reconnecting"], down
        private_broker.start_app()
        done = wait_job(api, job["id"], timeout=120)
        assert done["state"] == "completed" and done["confirmed"] == 20_000 and done["reconnecting"] is None, done
        assert done["digest"] == hashlib.sha256(bodies).hexdigest()
    received = consume_message_ids(private_broker.amqp_url, queue, at_least=20_000)
    assert set(received) == set(ids)
    repeats = len(received) - len(ids)
    assert repeats <= WINDOW, f"{repeats} events sent twice; at most the {WINDOW} in flight may be"
    first_seen = list(dict.fromkeys(received))
    assert first_seen == ids, "in store order"


@pytest.mark.slow
def test_a_broker_down_longer_than_the_give_up_time_fails_the_job_and_resume_completes_it(tmp_path, private_broker):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    app = create_app(api_settings(url, private_broker.amqp_url, replay_give_up_s=3))
    with TestClient(app, raise_server_exceptions=False) as api:
        store = api.app.state.services.store()
        seed(store, [new_event("OrderPlaced", n=i) for i in range(2_000)])
        ids, _, _ = store_order(store)
        queue = durable_queue(private_broker.amqp_url)
        job = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, "rate": 500}).json()
        wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 300, what="300 confirmed")
        private_broker.stop_app()
        failed = wait_job(api, job["id"], timeout=60)
        assert failed["state"] == "failed" and "gave up after 3 s" in failed["error"], failed
        assert failed["reconnecting"] is None
        private_broker.start_app()
        assert api.post(f"/replays/{job['id']}/resume").status_code == 202
        done = wait_job(api, job["id"], timeout=60)
        assert done["state"] == "completed" and done["confirmed"] == 2_000, done
    received = consume_message_ids(private_broker.amqp_url, queue, at_least=2_000)
    assert set(received) == set(ids) and len(received) - len(ids) <= WINDOW


# EventStoreDB restarted --------------------------------------------------------------------------


EMULATOR = ROOT.parent / "shared" / "esdb-emulator" / "esdb_emulator.py"


class EmulatorProcess:
    """The EventStoreDB test emulator as a process of this test, persistent (--db), so that it can
    be killed and started again on the same port with the same events."""

    def __init__(self, db: Path, log: Path):
        self.port = free_port()
        self.db, self.log_path = db, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(EMULATOR), "--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db)],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "listening on" in self.log_path.read_text(errors="replace").split("--- start")[-1],
                 timeout=60, what="the emulator to listen")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        with open(self.log_path, "a") as log:
            log.write("\n--- start\n")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.esdb
@pytest.mark.skipif(not EMULATOR.exists(), reason=f"no EventStoreDB emulator at {EMULATOR}")
def test_a_replay_rides_out_an_eventstoredb_restart(tmp_path, amqp_url, target_queue):
    emulator = EmulatorProcess(tmp_path / "esdb.sqlite", tmp_path / "emulator.log")
    emulator.start()
    try:
        url = private_esdb_url(emulator.url)
        store = open_store(url)
        try:
            seed(store, [new_event("OrderPlaced", n=i) for i in range(3_000)])
            ids, _, bodies = store_order(store)
        finally:
            store.close()
        app = create_app(api_settings(url, amqp_url))
        with TestClient(app, raise_server_exceptions=False) as api:
            job = api.post("/replay", json={"event_type": "OrderPlaced", "target_queue": target_queue,
                                            "rate": 600}).json()
            wait_for(lambda: api.get(f"/replays/{job['id']}").json()["confirmed"] >= 600, what="600 confirmed")
            emulator.kill()
            down = wait_for(lambda: (j := api.get(f"/replays/{job['id']}").json())["reconnecting"] and j,
                            timeout=30, what="the job to show it waits for the store")
            assert down["state"] == "running", down
            emulator.start()
            done = wait_job(api, job["id"], timeout=120)
            assert done["state"] == "completed" and done["confirmed"] == 3_000, done
            assert done["digest"] == hashlib.sha256(bodies).hexdigest()
        received = consume_message_ids(amqp_url, target_queue, at_least=3_000)
        assert set(received) == set(ids) and list(dict.fromkeys(received)) == ids
        assert len(received) - len(ids) <= WINDOW
    finally:
        emulator.stop()
