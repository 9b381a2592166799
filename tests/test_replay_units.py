"""The replay package's parts on their own: request validation, pacing schedules, job repositories
(every backend)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from eventreplay.backends import Backend
from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.replay.pacing import Pacer, RatePacer, SpeedPacer, pacer_for
from eventreplay.replay.spec import ReplaySpec
from tests.support.events import T0


def test_spec_unions_types_and_builds_the_query():
    spec = ReplaySpec(event_type="A", event_types=["B", "A"], target_queue="q", since="2024-05-01T12:00:00",
                      match={"order_id": "o1"}, limit=5)
    assert spec.types == ("A", "B")
    query = spec.query(after_position=7)
    assert query.event_types == ("A", "B") and query.after_position == 7 and query.limit == 5
    assert query.since == T0 and query.match == {"order_id": "o1"}
    assert ReplaySpec(target_queue="q").types is None  # every type
    assert ReplaySpec(target_exchange="x").target_description == "exchange 'x' with the original routing key"


@pytest.mark.parametrize("fields", [
    {}, {"target_queue": "amq.direct"}, {"target_queue": "AMQ.x"}, {"target_queue": "é" * 128},
    {"target_queue": "q", "target_exchange": "x"}, {"target_queue": "q", "routing_key": "k"},
    {"target_exchange": "x", "create_queue": True}, {"target_queue": "q", "match": {"x": float("nan")}},
    {"target_queue": "q", "event_types": [" A"]},
])
def test_spec_refuses(fields):
    with pytest.raises(ValidationError):
        ReplaySpec(**fields)


def test_rate_pacer_schedule_is_absolute():
    now = [100.0]
    pacer = RatePacer(4, clock=lambda: now[0])
    assert [pacer.send_at(T0) for _ in range(5)] == [100.0, 100.25, 100.5, 100.75, 101.0]


def test_speed_pacer_scales_the_original_spacing():
    pacer = SpeedPacer(10, clock=lambda: 50.0)
    moments = [pacer.send_at(T0 + timedelta(seconds=s)) for s in (0, 1, 10, 5)]
    assert moments == [50.0, 50.1, 51.0, 50.5]
    assert SpeedPacer(1, clock=lambda: 0.0).send_at(T0) == 0.0
    assert pacer_for(None, None).send_at(T0) is None and isinstance(pacer_for(None, None), Pacer)


def test_job_repository_round_trip(store_url):
    backend = Backend(store_url)
    jobs, store = backend.jobs(), backend.events()
    try:
        first = ReplayJob.create(ReplaySpec(event_type="A", target_queue="q"))
        jobs.save(first)
        second = ReplayJob.create(ReplaySpec(target_exchange="x", since="2024-05-01T00:00:00Z"))
        second.created_at = first.created_at + timedelta(seconds=1)
        jobs.save(second)
        first.state, first.confirmed, first.last_position = JobState.running, 5, 42
        jobs.save(first)

        assert jobs.get(first.id) == first
        assert jobs.get("6f1c1a8e-2d7a-4c55-8d0e-1b2b3c4d5e6f") is None
        assert [j.id for j in jobs.list()] == [second.id, first.id]
        assert [j.id for j in jobs.list(state=JobState.running)] == [first.id]
        assert [j.id for j in jobs.list(limit=1)] == [second.id]
        # job records are not archived events
        assert store.counts_by_type() == {}
    finally:
        backend.close()
