"""Storing batches in a thread of its own, so that receiving and storing overlap.

The connection's thread receives and triages the next batch while this thread appends the previous
one: SQLite (sqlite3 steps and the fsync at commit) and EventStoreDB (gRPC) release the GIL while
they wait, so the two really run side by side. Batches are appended strictly in the order given,
and results come back in that order; the connection's thread then acks (pika channels belong to
one thread).

A store outage (StoreUnavailable: a full disk, EventStoreDB down) is waited out here, in place: the
batch is appended again once the store passes a write probe, after growing delays, while the
connection's thread goes on serving the broker (heartbeats) and holds the deliveries unacked (at
most the prefetch). So an outage costs no redelivery unless the connection itself is lost. Told to
stop retrying (the consumer is stopping, or the connection is gone: acks are impossible anyway),
the writer gives the batch up. After a failure that is final, nothing more is appended: the batch
and every later one come back with the error, are never acked and will be redelivered.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Callable

from eventreplay.ingest.batch import Batch
from eventreplay.ingest.triage import refused_by_store
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.store import EventRejected, EventStore, StoreUnavailable

log = logging.getLogger("eventreplay.ingest")

_CLOSE = object()

# The longest wait between write probes while a batch waits in place: how late at most the end of
# an outage is noticed. A probe is cheap and costs no redelivery, so no need to wait as long as
# between reconnects.
LONGEST_RETRY_DELAY = 5.0


class BatchWriter:
    def __init__(self, store: EventStore, wake: Callable[[], None],
                 on_commit: Callable[[float], None] | None = None):
        self.store, self._wake = store, wake
        self._on_commit = on_commit  # seconds one committed append took (ingest metrics)
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: collections.deque[tuple[Batch, int | BaseException]] = collections.deque()
        self.pending = 0  # submitted, result not yet taken (used by the connection's thread only)
        self._no_more_retries = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self.pending += 1
        self._todo.put(batch)

    def results(self) -> list[tuple[Batch, int | BaseException]]:
        """Finished batches in submission order: (batch, new events) or (batch, the store's error)."""
        out = []
        while self._done:
            out.append(self._done.popleft())
        self.pending -= len(out)
        return out

    def stop_retrying(self) -> None:
        """From now on a failed append is final (every batch still gets its first attempt), and a
        wait for the store ends now."""
        self._no_more_retries.set()

    def close(self) -> None:
        """Finish the append in progress (never abandon it half-way), retry nothing, end the thread."""
        self.stop_retrying()
        self._todo.put(_CLOSE)
        self._thread.join()

    def _append(self, batch: Batch) -> int:
        """Append the batch's events; events the store refuses for good become dead letters of the
        batch (published and confirmed before the ack) and the rest is appended again."""
        while batch.events:
            try:
                started = time.perf_counter()
                new = self.store.append(batch.events)
                if self._on_commit is not None:
                    self._on_commit(time.perf_counter() - started)
                return new
            except EventRejected as rejected:
                kept = [event for event in batch.events if event.event_id not in rejected.reasons]
                if len(kept) == len(batch.events):
                    raise  # it named none of ours: a store failure like any other
                batch.dead_letters += [refused_by_store(event, rejected.reasons[event.event_id])
                                       for event in batch.events if event.event_id in rejected.reasons]
                batch.events = kept
        return 0

    def _store(self, batch: Batch) -> int:
        """Append the batch; while the store is unavailable, wait until it passes a write probe (a
        read is no proof: a full disk still serves reads) and append it again (the same batch:
        appends are idempotent), until told to stop retrying."""
        retry = RetryPolicy(interrupt=self._no_more_retries, longest=LONGEST_RETRY_DELAY)

        def unavailable(error: BaseException, delay: float) -> None:
            log.warning("the event store takes no writes (%s); keeping the batch's %d deliveries unacked, "
                        "next try in %.1f s", one_line(error), len(batch), delay)

        try:
            for attempt in retry.retrying(StoreUnavailable, on_fault=unavailable):
                with attempt:
                    if retry.failures:
                        self.store.probe_write()
                    return self._append(batch)
        except Interrupted as interrupted:
            raise interrupted.last_error from None
        raise AssertionError("unreachable")

    def _run(self) -> None:
        failure: BaseException | None = None
        while (batch := self._todo.get()) is not _CLOSE:
            if failure is None:
                try:
                    result: int | BaseException = self._store(batch)
                except BaseException as error:  # noqa: BLE001 - handed to the connection's thread
                    failure = result = error
            else:
                result = failure  # never store past a failed batch: it would be acked out of order
            self._done.append((batch, result))
            try:
                self._wake()
            except Exception:  # noqa: BLE001 - the connection is gone; nobody is waiting any more
                pass
