"""A replay job's state changes: every allowed move, and none back from an end state."""
from __future__ import annotations

import pytest

from eventreplay.replay.jobs import JobState, JobStateConflict, ReplayJob
from eventreplay.replay.spec import ReplaySpec


def new_job() -> ReplayJob:
    return ReplayJob.create(ReplaySpec(event_type="OrderPlaced", target_queue="q"))


def test_a_job_runs_ends_and_resumes():
    job = new_job()
    assert job.state == JobState.pending and job.runs == 0
    job.start()
    assert job.state == JobState.running and job.runs == 1 and job.started_at is not None
    job.reconnecting = "broker connection lost"
    job.end(JobState.interrupted, error="the API stopped")
    assert (job.state, job.error, job.reconnecting) == (JobState.interrupted, "the API stopped", None)
    assert job.ended_at is not None
    job.reopen()
    assert job.state == JobState.pending and job.error is None and job.ended_at is None
    job.start()
    job.end(JobState.completed)
    assert job.runs == 2 and job.state == JobState.completed


@pytest.mark.parametrize("end", [JobState.completed, JobState.failed, JobState.cancelled, JobState.interrupted])
def test_nothing_moves_a_job_back_from_an_end_state(end):
    job = new_job()
    job.start()
    job.end(end)
    for move in (job.start, lambda: job.end(JobState.completed), lambda: job.end(JobState.cancelled)):
        with pytest.raises(JobStateConflict, match="already ended"):
            move()
    assert job.state == end
    if end == JobState.completed:
        with pytest.raises(JobStateConflict):
            job.reopen()  # a completed job is never resumed
    else:
        job.reopen()
        assert job.state == JobState.pending


def test_a_running_job_cannot_be_reopened_or_started_twice():
    job = new_job()
    job.start()
    with pytest.raises(JobStateConflict):
        job.reopen()
    with pytest.raises(JobStateConflict):
        job.start()
    with pytest.raises(ValueError):
        job.end(JobState.running)
