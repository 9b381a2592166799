"""What the API holds for its lifetime: the store, the job repository, the replay engine, the
broker connection for checks, and the metrics. Opened at startup and closed at shutdown; if the
store cannot be opened at startup the API still starts (`/ready` says why) and retries on use."""
from __future__ import annotations

import logging
import threading

from eventreplay.api.metrics import ReplayMetrics
from eventreplay.replay.engine import ReplayEngine, RunPolicy
from eventreplay.replay.job_repository import JobRepository, open_job_repository
from eventreplay.replay.targets import BrokerAdmin
from eventreplay.settings import Settings
from eventreplay.store import EventStore, PersistenceError, StoreUnavailable, open_store

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = ReplayMetrics()
        self.broker = BrokerAdmin(settings.amqp_url)
        self.replay_policy = RunPolicy(
            window=settings.replay_window, checkpoint_every=settings.replay_checkpoint_every,
            give_up_after=settings.replay_give_up_s,
        )
        self._lock = threading.Lock()
        self._store: EventStore | None = None
        self._jobs: JobRepository | None = None
        self._engine: ReplayEngine | None = None
        self._closed = False

    def open(self) -> None:
        try:
            self.engine()
        except PersistenceError as error:
            log.warning("the event store is not available yet (%s); will retry on use", error)
        if self.settings.replay_queue:
            # A ready target, so a first replay works without create_queue (as the README's curl).
            try:
                self.broker.declare_queue(self.settings.replay_queue)
            except Exception as error:  # noqa: BLE001 - the API serves without it; /ready tells
                log.warning("could not declare the replay queue %r (%s)", self.settings.replay_queue, error)

    def engine(self) -> ReplayEngine:
        """The engine (opening the store and the job repository first if needed)."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            if self._closed:
                raise StoreUnavailable("the API is shutting down")
            url = self.settings.event_store_url
            store = self._store or open_store(url)
            self._store = store
            jobs = self._jobs or open_job_repository(url, store)
            self._jobs = jobs
            engine = ReplayEngine(store, jobs, self.settings.amqp_url, observer=self.metrics, policy=self.replay_policy)
            engine.interrupt_leftovers()
            self._engine = engine
            return engine

    def store(self) -> EventStore:
        return self.engine().store

    def close(self) -> None:
        with self._lock:
            self._closed = True
            engine, jobs, store = self._engine, self._jobs, self._store
            self._engine = self._jobs = self._store = None
        if engine is not None:
            engine.shutdown()
        for resource in (jobs, store, self.broker):
            if resource is None:
                continue
            try:
                resource.close()
            except Exception:  # noqa: BLE001 - closing must go on with the others
                log.exception("error while closing %r", resource)
