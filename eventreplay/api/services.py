"""What the API holds for its lifetime: the storage (event store and job repository, eventreplay/
backends.py), the replay engine, the broker connection for checks, and the metrics. Opened at
startup and closed at shutdown; if the store cannot be opened at startup the API still starts
(`/ready` says why) and retries on use. Browsing needs only the event store, never the engine."""
from __future__ import annotations

import logging
import threading
import time

from eventreplay.api.broker_admin import BrokerAdmin
from eventreplay.api.metrics import ReplayMetrics
from eventreplay.backends import Backend
from eventreplay.replay.engine import ReplayEngine
from eventreplay.replay.leases import LeasePolicy, instance_name
from eventreplay.replay.policy import RunPolicy
from eventreplay.settings import Settings
from eventreplay.store import EventStore, PersistenceError, StoreUnavailable

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = ReplayMetrics()
        self.broker = BrokerAdmin(settings.amqp_url, queue_type=settings.queue_type)
        self.backend = Backend(settings.event_store_url)
        self.replay_policy = RunPolicy(
            window=settings.replay_window, checkpoint_every=settings.replay_checkpoint_every,
            give_up_after=settings.replay_give_up_s, queue_type=settings.queue_type,
        )
        self._lock = threading.Lock()
        self._engine: ReplayEngine | None = None
        self._closed = False

    def open(self) -> None:
        try:
            self.engine()
        except PersistenceError as error:
            log.warning("the event store is not available yet (%s); will retry", error)
            # the engine also takes over other instances' orphaned jobs: it must not wait for a request
            threading.Thread(target=self._open_engine_later, name="engine-opener", daemon=True).start()
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
            engine = ReplayEngine(self.backend.events(), self.backend.jobs(), self.settings.amqp_url,
                                  observer=self.metrics, policy=self.replay_policy,
                                  owner=instance_name(self.settings.instance_name),
                                  lease=LeasePolicy(self.settings.job_lease_s))
            engine.watch()  # jobs other instances (or this one's predecessor) left are taken over
            self._engine = engine
            return engine

    def _open_engine_later(self) -> None:
        while not self._closed:
            time.sleep(2.0)
            try:
                self.engine()
                return
            except PersistenceError:
                continue

    def store(self) -> EventStore:
        if self._closed:
            raise StoreUnavailable("the API is shutting down")
        return self.backend.events()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
        for resource in (self.backend, self.broker):
            try:
                resource.close()
            except Exception:  # noqa: BLE001 - closing must go on with the others
                log.exception("error while closing %r", resource)
