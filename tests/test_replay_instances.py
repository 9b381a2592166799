"""Several Replay API instances on one store (real `python replay_api.py` processes): job leases.

- the instance running a replay killed (SIGKILL): another instance takes the job over after the
  lease and finishes it; every matched event arrives, repeats within the documented resume bound,
  digest as an uninterrupted replay;
- instances that are alive never take each other's jobs, and a new instance starting up leaves the
  running jobs of the others alone;
- cancel and resume work whichever instance receives them;
- every save is a compare-and-set: of two instances changing one job, one wins.
"""
from __future__ import annotations

import hashlib

import pytest

from eventreplay.backends import Backend
from eventreplay.replay.job_records import JobChanged
from eventreplay.replay.jobs import ReplayJob
from eventreplay.replay.spec import ReplaySpec
from tests.support.amqp import consume_message_ids, declare_queue, delete_queue, queue_depth
from tests.support.api import wait_job
from tests.support.events import new_event
from tests.support.processes import start_api
from tests.support.replays import assert_resumed_delivery, store_order
from tests.support.stores import seed
from tests.support.waiting import wait_for

WINDOW, CHECKPOINT_EVERY = 1000, 1000
BOUND = WINDOW + CHECKPOINT_EVERY  # docs/api.md "Guarantees", with these settings
LEASE_S = 2
ENV = {"REPLAY_WINDOW": str(WINDOW), "REPLAY_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY), "JOB_LEASE_S": str(LEASE_S),
       "LOG_LEVEL": "INFO"}


@pytest.fixture
def two_apis(store_url, amqp_url, tmp_path):
    started = []

    def start(name: str):
        api = start_api(store_url, amqp_url, tmp_path / f"api-{name}.log", **ENV)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def queue(amqp_url, names):
    declare_queue(amqp_url, names["target_queue"])
    yield names["target_queue"]
    delete_queue(amqp_url, names["target_queue"])


@pytest.mark.slow
def test_the_owner_killed_another_instance_finishes_the_job(store_url, store, amqp_url, queue, two_apis):
    esdb = store_url.startswith("esdb")
    count, pace = (5_000, {"rate": 2_000}) if esdb else (100_000, {})
    seed(store, (new_event("OrderPlaced", n=i) for i in range(count)), batch=5_000)
    ids, index_of_position, bodies = store_order(store)
    a, b = two_apis("a"), two_apis("b")

    job = a.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, **pace}).json()
    wait_for(lambda: queue_depth(amqp_url, queue) >= count // 4, timeout=120, interval=0.02,
             what="a quarter of the events in the target queue")
    a.kill()
    left = b.client.get(f"/replays/{job['id']}").json()
    assert left["state"] == "running" and left["owner"] == job["owner"], left
    done = wait_job(b.client, job["id"], timeout=240)

    assert done["state"] == "completed", done
    assert done["confirmed"] == done["matched"] == count
    assert done["owner"] != job["owner"] and done["takeovers"] == 1 and done["runs"] == 2
    assert done["digest"] == hashlib.sha256(bodies).hexdigest(), "the digest of an uninterrupted replay"
    received = consume_message_ids(amqp_url, queue, at_least=count)
    assert_resumed_delivery(received, ids, [index_of_position[left["last_position"]]], BOUND)


def test_live_instances_never_take_each_others_jobs(store, amqp_url, queue, two_apis):
    seed(store, (new_event("OrderPlaced", n=i) for i in range(60)))
    a = two_apis("a")
    # 60 events at 10/s: about 6 s, three leases, on instance A
    job = a.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, "rate": 10}).json()
    b = two_apis("b")  # starting up, B leaves A's running job alone
    assert b.client.get(f"/replays/{job['id']}").json()["state"] == "running"
    done = wait_job(b.client, job["id"], timeout=60)
    assert done["state"] == "completed" and done["confirmed"] == 60
    assert done["runs"] == 1 and done["takeovers"] == 0 and done["owner"] == job["owner"]
    assert len(consume_message_ids(amqp_url, queue, at_least=60, idle=0.5)) == 60  # sent once


def test_cancel_and_resume_through_the_instance_that_does_not_run_the_job(store, amqp_url, queue, two_apis):
    seed(store, (new_event("OrderPlaced", n=i) for i in range(400)))
    a, b = two_apis("a"), two_apis("b")
    job = a.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, "rate": 20}).json()
    wait_for(lambda: queue_depth(amqp_url, queue) >= 10, timeout=30, what="the replay under way")

    cancelled = b.client.post(f"/replays/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"  # ended by A, its owner, and answered by B
    stopped_at = cancelled.json()["confirmed"]
    assert a.client.get(f"/replays/{job['id']}").json()["state"] == "cancelled"
    assert b.client.post(f"/replays/{job['id']}/cancel").status_code == 409  # it has ended

    resumed = b.client.post(f"/replays/{job['id']}/resume", json={})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["owner"] not in (None, job["owner"])  # B runs it now
    done = wait_job(a.client, job["id"], timeout=60)
    assert done["state"] == "completed" and done["confirmed"] == 400 and stopped_at < 400
    received = consume_message_ids(amqp_url, queue, at_least=400, idle=0.5)
    assert len(set(received)) == 400 and len(received) - 400 <= BOUND


def test_of_two_instances_changing_one_job_only_one_succeeds(store_url):
    backend = Backend(store_url)
    try:
        jobs = backend.jobs()
        job = ReplayJob.create(ReplaySpec(event_type="OrderPlaced", target_queue="q"))
        jobs.save(job)
        mine, theirs = jobs.get(job.id), jobs.get(job.id)
        mine.cancel_requested = True
        jobs.save(mine)
        theirs.owner = "other"
        with pytest.raises(JobChanged):
            jobs.save(theirs)
        assert jobs.get(job.id).cancel_requested and jobs.get(job.id).owner is None
        with pytest.raises(JobChanged):
            jobs.save(ReplayJob.create(ReplaySpec(event_type="OrderPlaced", target_queue="q")).model_copy(
                update={"id": job.id}))  # a second job with that id
        fresh = jobs.get(job.id)
        fresh.owner = "other"
        jobs.save(fresh)  # read again, then saved: fine
        assert jobs.get(job.id).owner == "other"
    finally:
        backend.close()
