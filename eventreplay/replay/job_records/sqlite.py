"""Replay jobs in SQLite: a `replay_jobs` table in the event store's database file (the store owns
its own tables), on a connection of its own. Compare-and-set by a `revision` column: an UPDATE
matches the row only at the revision the job was read at (SQLite serialises writers, so two API
processes on one file cannot both succeed)."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from eventreplay.replay.job_records.base import JobChanged, JobRepository
from eventreplay.replay.jobs import JobState, ReplayJob
from eventreplay.store.base import PersistenceError, StoreUnavailable


class SQLiteJobRepository(JobRepository):
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            # One connection shared by the API's threads, serialised by the lock.
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA busy_timeout = 10000")
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS replay_jobs ("
                    " id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL)"
                )
                self._db.execute(
                    "CREATE INDEX IF NOT EXISTS replay_jobs_created ON replay_jobs (created_at DESC)"
                )
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(replay_jobs)")}
                if "revision" not in columns:  # a file of an earlier version: its jobs are at revision 1
                    try:
                        self._db.execute("ALTER TABLE replay_jobs ADD COLUMN revision INTEGER NOT NULL DEFAULT 1")
                    except sqlite3.OperationalError as error:  # another process added it first
                        if "duplicate column" not in str(error):
                            raise
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open the job table in {self.path}: {error}") from error

    def save(self, job: ReplayJob) -> None:
        data = job.model_dump_json()
        try:
            with self._lock, self._db:
                if job.revision == 0:
                    changed = self._db.execute(
                        "INSERT INTO replay_jobs (id, state, created_at, data, revision) VALUES (?, ?, ?, ?, 1)"
                        " ON CONFLICT (id) DO NOTHING",
                        (job.id, job.state.value, job.created_at.isoformat(), data)).rowcount
                else:
                    changed = self._db.execute(
                        "UPDATE replay_jobs SET state = ?, data = ?, revision = revision + 1"
                        " WHERE id = ? AND revision = ?", (job.state.value, data, job.id, job.revision)).rowcount
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot save replay job {job.id}: {error}") from error
        if not changed:
            raise JobChanged(f"replay job {job.id} changed since revision {job.revision}")
        job.revision += 1

    def get(self, job_id: str) -> ReplayJob | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT data, revision FROM replay_jobs WHERE id = ?", (job_id,)).fetchone()
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read replay job {job_id}: {error}") from error
        return _job(row) if row else None

    def list(self, *, state: JobState | None = None, limit: int | None = None) -> list[ReplayJob]:
        sql = "SELECT data, revision FROM replay_jobs"
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
        return [_job(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _job(row) -> ReplayJob:
    job = ReplayJob.model_validate_json(row[0])
    job.revision = row[1]
    return job
