"""Where replay jobs are kept: in the store's own backend, apart from the archived events, so that
the history survives a restart and several API instances could share it (DESIGN.md).

- SQLite: a `replay_jobs` table in the store's database file, on a connection of its own.
- EventStoreDB: one stream per job, `{streamPrefix}eventreplay-job-{id}`, one
  `eventreplay.ReplayJobUpdated` event per saved state (the latest one is the job). The ESDB event
  store leaves `eventreplay.*` types out of archived-event reads, so jobs never show up as events.
"""
from __future__ import annotations

import abc
import sqlite3
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.store.base import EventStore, InvalidStoreURL, PersistenceError, StoreUnavailable

JOB_EVENT_TYPE = "eventreplay.ReplayJobUpdated"
JOB_STREAM_INFIX = "eventreplay-job-"


class JobRepository(abc.ABC):
    @abc.abstractmethod
    def save(self, job: ReplayJob) -> None:
        """Insert or replace the job's record."""

    @abc.abstractmethod
    def get(self, job_id: str) -> ReplayJob | None: ...

    @abc.abstractmethod
    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        """Jobs, newest first."""

    def close(self) -> None:
        pass


class SQLiteJobRepository(JobRepository):
    def __init__(self, database_path: str | Path):
        self.database_path = str(database_path)
        self._lock = threading.Lock()
        try:
            # One connection shared by the API's threads, serialised by the lock.
            self._db = sqlite3.connect(self.database_path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA busy_timeout = 10000")
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS replay_jobs ("
                    " id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL)"
                )
                self._db.execute(
                    "CREATE INDEX IF NOT EXISTS replay_jobs_created ON replay_jobs (created_at DESC)"
                )
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open the job table in {self.database_path}: {error}") from error

    def save(self, job: ReplayJob) -> None:
        data = job.model_dump_json()
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT INTO replay_jobs (id, state, created_at, data) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, data = excluded.data",
                    (job.id, job.state.value, job.created_at.isoformat(), data),
                )
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot save replay job {job.id}: {error}") from error

    def get(self, job_id: str) -> ReplayJob | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT data FROM replay_jobs WHERE id = ?", (job_id,)).fetchone()
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read replay job {job_id}: {error}") from error
        return ReplayJob.model_validate_json(row[0]) if row else None

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        sql = "SELECT data FROM replay_jobs"
        args: list = []
        if state is not None:
            sql += " WHERE state = ?"
            args.append(state.value)
        sql += " ORDER BY created_at DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            with self._lock:
                rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot list replay jobs: {error}") from error
        return [ReplayJob.model_validate_json(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def split_stream_prefix(esdb_url: str) -> tuple[str, str]:
    """(URL without `streamPrefix`, the prefix): esdbclient refuses query fields it does not know."""
    parts = urlsplit(esdb_url)
    prefix = ""
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "streamprefix":
            prefix = value
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), prefix


class ESDBJobRepository(JobRepository):
    def __init__(self, esdb_url: str):
        from esdbclient import EventStoreDBClient
        from esdbclient.exceptions import EventStoreDBClientException

        self._client_errors = (EventStoreDBClientException,)
        url, self.stream_prefix = split_stream_prefix(esdb_url)
        try:
            self._client = EventStoreDBClient(uri=url)
        except (EventStoreDBClientException, ValueError) as error:
            raise StoreUnavailable(f"cannot connect to EventStoreDB for replay jobs: {error}") from error

    def _stream(self, job_id: str) -> str:
        return f"{self.stream_prefix}{JOB_STREAM_INFIX}{job_id}"

    def _error(self, doing: str, error: Exception) -> PersistenceError:
        from esdbclient.exceptions import DeadlineExceeded, ServiceUnavailable

        kind = StoreUnavailable if isinstance(error, (ServiceUnavailable, DeadlineExceeded)) else PersistenceError
        return kind(f"cannot {doing}: {error.__class__.__name__} {error}".strip())

    def save(self, job: ReplayJob) -> None:
        from esdbclient import NewEvent, StreamState

        event = NewEvent(type=JOB_EVENT_TYPE, data=job.model_dump_json().encode("utf-8"))
        try:
            self._client.append_to_stream(
                self._stream(job.id), current_version=StreamState.ANY, events=event, timeout=10
            )
        except self._client_errors as error:
            raise self._error(f"save replay job {job.id}", error) from error

    def get(self, job_id: str) -> ReplayJob | None:
        from esdbclient.exceptions import NotFound

        try:
            events = self._client.get_stream(self._stream(job_id), backwards=True, limit=1, timeout=10)
        except NotFound:
            return None
        except self._client_errors as error:
            raise self._error(f"read replay job {job_id}", error) from error
        return ReplayJob.model_validate_json(events[0].data) if events else None

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        # Backwards over $all, filtered server-side on the job event type: the first update seen
        # of each job stream is its latest state.
        stream_start = f"{self.stream_prefix}{JOB_STREAM_INFIX}"
        seen: set[str] = set()
        jobs: list[ReplayJob] = []
        try:
            for recorded in self._client.read_all(
                backwards=True, filter_include=[JOB_EVENT_TYPE.replace(".", r"\.")], timeout=30
            ):
                stream = recorded.stream_name
                if not stream.startswith(stream_start) or stream in seen:
                    continue
                seen.add(stream)
                job = ReplayJob.model_validate_json(recorded.data)
                if state is None or job.state == state:
                    jobs.append(job)
        except self._client_errors as error:
            raise self._error("list replay jobs", error) from error
        jobs.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return jobs[:limit] if limit is not None else jobs

    def close(self) -> None:
        self._client.close()


def sqlite_path_from_url(url: str) -> str:
    if not url.lower().startswith("sqlite:///"):
        raise InvalidStoreURL(f"not an SQLite URL: {url!r}")
    return url[len("sqlite:///"):]


def open_job_repository(store_url: str, store: EventStore | None = None) -> JobRepository:
    """The job repository that goes with EVENT_STORE_URL (the same backend as the events)."""
    scheme = store_url.split("://", 1)[0].lower() if "://" in store_url else ""
    if scheme == "sqlite":
        path = getattr(store, "database_path", None) or sqlite_path_from_url(store_url)
        return SQLiteJobRepository(path)
    if scheme in ("esdb", "esdb+discover"):
        return ESDBJobRepository(store_url)
    raise InvalidStoreURL(f"EVENT_STORE_URL {store_url!r}: no job repository for this backend")
