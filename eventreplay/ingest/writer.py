"""Storing batches in a thread of its own, so that receiving and storing overlap.

The connection's thread receives and triages the next batch while this thread appends the previous
one: SQLite (sqlite3 steps and the fsync at commit) and EventStoreDB (gRPC) release the GIL while
they wait, so the two really run side by side. Batches are appended strictly in the order given,
and results come back in that order; the connection's thread then acks (pika channels belong to
one thread). After a failure nothing more is appended: the consumer drops the connection and every
unacked message is redelivered.
"""
from __future__ import annotations

import collections
import queue
import threading
from typing import Callable

from eventreplay.ingest.batch import Batch
from eventreplay.ingest.triage import refused_by_store
from eventreplay.store import EventRejected, EventStore

_CLOSE = object()


class BatchWriter:
    def __init__(self, store: EventStore, wake: Callable[[], None]):
        self.store, self._wake = store, wake
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: collections.deque[tuple[Batch, int | BaseException]] = collections.deque()
        self.pending = 0  # submitted, result not yet taken (used by the connection's thread only)
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

    def close(self) -> None:
        """Finish the append in progress (never abandon it half-way) and end the thread."""
        self._todo.put(_CLOSE)
        self._thread.join()

    def _append(self, batch: Batch) -> int:
        """Append the batch's events; events the store refuses for good become dead letters of the
        batch (published and confirmed before the ack) and the rest is appended again."""
        while batch.events:
            try:
                return self.store.append(batch.events)
            except EventRejected as rejected:
                kept = [event for event in batch.events if event.event_id not in rejected.reasons]
                if len(kept) == len(batch.events):
                    raise  # it named none of ours: a store failure like any other
                batch.dead_letters += [refused_by_store(event, rejected.reasons[event.event_id])
                                       for event in batch.events if event.event_id in rejected.reasons]
                batch.events = kept
        return 0

    def _run(self) -> None:
        failure: BaseException | None = None
        while (batch := self._todo.get()) is not _CLOSE:
            if failure is None:
                try:
                    result: int | BaseException = self._append(batch)
                except BaseException as error:  # noqa: BLE001 - handed to the connection's thread
                    failure = result = error
            else:
                result = failure  # never store past a failed batch: it would be acked out of order
            self._done.append((batch, result))
            try:
                self._wake()
            except Exception:  # noqa: BLE001 - the connection is gone; nobody is waiting any more
                pass
