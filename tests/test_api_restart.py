"""The API process killed (SIGKILL) during a replay and started again: the job reads `interrupted`,
resume completes it, and only events in flight at the kill may arrive twice."""
from __future__ import annotations

import collections

import pytest

from eventreplay.replay.job_repository import open_job_repository
from eventreplay.store import EventQuery
from tests.replay_support import ApiProcess, declare_queue, delete_queue, drain, make_event, seed, wait_for


class ReplayJobSentinel:
    confirmed = 0


@pytest.mark.slow
def test_sigkill_then_resume_completes_without_confirmed_duplicates(store_url, store, amqp_url, names, tmp_path):
    esdb = store_url.startswith("esdb")
    count, rate, kill_after = (200, 100, 40) if esdb else (2000, 1000, 400)
    seed(store, [make_event("OrderPlaced", n=i) for i in range(count)], batch=500)
    position_of = {e.event_id: e.position for e in store.read(EventQuery())}
    queue = names["target_queue"]
    declare_queue(amqp_url, queue)
    first = second = None
    try:
        first = ApiProcess(store_url, amqp_url, tmp_path / "api-1.log")
        response = first.client.post("/replay", json={"event_type": "OrderPlaced", "target_queue": queue, "rate": rate})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        # kill once the persisted progress (what a restart finds) shows confirmed events
        jobs = open_job_repository(store_url, store)
        try:
            wait_for(lambda: (jobs.get(job_id) or ReplayJobSentinel).confirmed >= kill_after, timeout=60,
                     what=f"{kill_after} confirmed events recorded")
        finally:
            jobs.close()
        first.kill()
        first.stop()

        second = ApiProcess(store_url, amqp_url, tmp_path / "api-2.log")
        interrupted = second.job(job_id)
        assert interrupted["state"] == "interrupted", interrupted
        assert 0 < interrupted["confirmed"] < count
        resume = second.client.post(f"/replays/{job_id}/resume")
        assert resume.status_code == 202, resume.text
        done = wait_for(lambda: (j := second.job(job_id))["state"] in ("completed", "failed") and j,
                        timeout=60, what="the resumed job to end")
        assert done["state"] == "completed", done
        assert done["confirmed"] == done["matched"] == count and done["runs"] == 2

        received = collections.Counter(m.event_id for m in drain(amqp_url, queue, timeout=60, idle=1.0))
        assert set(received) == set(position_of), "every matched event arrived"
        twice = [event_id for event_id, n in received.items() if n > 1]
        # only events after the last confirmed position recorded before the kill (in flight) may repeat
        assert all(position_of[event_id] > interrupted["last_position"] for event_id in twice), twice
        assert max(received.values()) <= 2
        # the digest covers the whole content, as if the replay had never stopped
        import hashlib
        assert done["digest"] == hashlib.sha256(b"".join(e.body for e in store.read(EventQuery()))).hexdigest()
    finally:
        for api in (first, second):
            if api is not None:
                api.stop()
        delete_queue(amqp_url, queue)
