"""The storage behind EVENT_STORE_URL, built in one place: the event store and, beside it in the same
backend, the replay job repository. The URL is parsed once (store/urls.py); the job repository of
EventStoreDB goes through the event store's own client, the SQLite one into the same file.

The parts open lazily and separately: a consumer or a browsing request needs only the events; the
replay engine needs the jobs too.
"""
from __future__ import annotations

import threading

from eventreplay.replay.job_records import JobRepository
from eventreplay.store import EventStore, open_store
from eventreplay.store.urls import ESDBLocation, SQLiteLocation, StoreLocation, parse_store_url


class Backend:
    def __init__(self, url: str):
        self.url = url
        self.location: StoreLocation | None = None  # parsed on first use: a bad URL is then a PersistenceError
        self._lock = threading.Lock()
        self._events: EventStore | None = None
        self._jobs: JobRepository | None = None

    def events(self) -> EventStore:
        with self._lock:
            if self._events is None:
                self.location = self.location or parse_store_url(self.url)
                self._events = open_store(self.location)
            return self._events

    def jobs(self) -> JobRepository:
        events = self.events()
        with self._lock:
            if self._jobs is None:
                self._jobs = self._open_jobs(events)
            return self._jobs

    def _open_jobs(self, events: EventStore) -> JobRepository:
        if isinstance(self.location, SQLiteLocation):
            from eventreplay.replay.job_records.sqlite import SQLiteJobRepository

            return SQLiteJobRepository(self.location.path)
        assert isinstance(self.location, ESDBLocation)
        from eventreplay.replay.job_records.esdb import ESDBJobRepository

        return ESDBJobRepository(events)  # type: ignore[arg-type] - the store this location opened

    def close(self) -> None:
        with self._lock:
            jobs, events, self._jobs, self._events = self._jobs, self._events, None, None
        for part in (jobs, events):
            if part is not None:
                part.close()
