"""Replay jobs in EventStoreDB: one private stream per job (the event store's private-records
namespace, so jobs never show up as archived events), one `ReplayJobUpdated` event per saved state;
the latest is the job. Through the event store's own client: one connection for both.

Compare-and-set is EventStoreDB's own optimistic concurrency: a job at revision r was read from a
stream whose last event is at stream position r - 1, and is appended with that expected position
(a new job: "no stream"); WrongCurrentVersion means another instance saved it meanwhile."""
from __future__ import annotations

from esdbclient import NewEvent, StreamState
from esdbclient.exceptions import EventStoreDBClientException, NotFound, WrongCurrentVersion

from eventreplay.replay.job_records.base import JobChanged, JobRepository
from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.store.base import PersistenceError
from eventreplay.store.esdb import EventStoreDBEventStore, translate

JOB_RECORD_KIND = "ReplayJobUpdated"
# Only the latest state matters: older ones may go at the next scavenge.
KEEP_STATES = 10


class ESDBJobRepository(JobRepository):
    def __init__(self, store: EventStoreDBEventStore):
        self._store = store
        self._type = store.private_type(JOB_RECORD_KIND)

    def _stream(self, job_id: str) -> str:
        return self._store.private_stream(f"job-{job_id}")

    def save(self, job: ReplayJob) -> None:
        event = NewEvent(type=self._type, data=job.model_dump_json().encode("utf-8"))
        client = self._store.client()
        expected = StreamState.NO_STREAM if job.revision == 0 else job.revision - 1
        try:
            if job.revision == 0:  # a new job: bound its stream once
                client.set_stream_metadata(self._stream(job.id), metadata={"$maxCount": KEEP_STATES},
                                           current_version=StreamState.ANY, timeout=10)
            client.append_to_stream(self._stream(job.id), current_version=expected, events=event, timeout=10)
        except WrongCurrentVersion:
            raise JobChanged(f"replay job {job.id} changed since revision {job.revision}") from None
        except (EventStoreDBClientException, ValueError) as error:
            raise translate(error, f"saving replay job {job.id}") from None
        job.revision += 1

    def get(self, job_id: str) -> ReplayJob | None:
        try:
            events = self._store.client().get_stream(self._stream(job_id), backwards=True, limit=1, timeout=10)
        except NotFound:
            return None
        except (EventStoreDBClientException, ValueError) as error:
            raise translate(error, f"reading replay job {job_id}") from None
        return _job(events[0]) if events else None

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        # Backwards over $all, filtered server-side on the job record type: the first update seen
        # of each job stream is its latest state.
        stream_start = self._stream("")
        seen: set[str] = set()
        jobs: list[ReplayJob] = []
        try:
            for recorded in self._store.client().read_all(
                backwards=True, filter_include=[self._type.replace(".", r"\.")], timeout=30
            ):
                stream = recorded.stream_name
                if not stream.startswith(stream_start) or stream in seen:
                    continue
                seen.add(stream)
                job = _job(recorded)
                if state is None or job.state == state:
                    jobs.append(job)
        except PersistenceError:
            raise
        except (EventStoreDBClientException, ValueError) as error:
            raise translate(error, "listing replay jobs") from None
        jobs.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return jobs[:limit] if limit is not None else jobs


def _job(recorded) -> ReplayJob:
    job = ReplayJob.model_validate_json(recorded.data)
    job.revision = recorded.stream_position + 1
    return job
