"""Replay jobs in SQLite: a `replay_jobs` table in the event store's database file (the store owns
its own tables), on a connection of its own."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from eventreplay.replay.job_records.base import JobRepository
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
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open the job table in {self.path}: {error}") from error

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
