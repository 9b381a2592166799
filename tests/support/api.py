"""The Replay API in the tests: its settings for a test's store and broker, and waiting for a job."""
from __future__ import annotations

from eventreplay.settings import Settings
from tests.support.waiting import wait_for

ENDED = ("completed", "failed", "cancelled", "interrupted")  # the states a job never leaves by itself


def api_settings(store_url: str, amqp_url: str, **overrides) -> Settings:
    """The API's settings for that store and broker, and nothing from the environment or `.env`."""
    return Settings(_env_file=None, event_store_url=store_url, amqp_url=amqp_url, **overrides)


def wait_job(client, job_id: str, *, states: tuple[str, ...] = ENDED, timeout: float = 30.0) -> dict:
    """The job (GET /replays/{id}) once it is in one of `states` (by default: once it has ended).
    `client`: the in-process API (TestClient) or an httpx.Client of a served one."""
    def reached():
        job = client.get(f"/replays/{job_id}").json()
        return job if job["state"] in states else None
    return wait_for(reached, timeout=timeout, what=f"replay {job_id} to be {' or '.join(states)}")
