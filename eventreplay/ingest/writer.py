"""Storing batches beside the connection's thread, so that receiving and storing overlap.

The connection's thread receives and triages the next batch while a writer appends the previous one.
Two writers share one interface (BatchWriter) and one way of storing (`serve`, `append_events`):
- ThreadBatchWriter: a thread of the consumer. SQLite and gRPC release the GIL while they wait, but
  the Python work around them does not, so the two threads take turns on one core.
- ProcessBatchWriter (store_process.py): a child process with a store of its own, so that storing
  runs on a second core (the consumer's default: WRITER_PROCESS).
Batches are appended strictly in the order given, and results come back in that order; the
connection's thread then acks (pika channels belong to one thread).

A store outage (StoreUnavailable: a full disk, EventStoreDB down) is waited out by the writer, in
place: the batch is appended again once the store passes a write probe, after growing delays, while
the connection's thread goes on serving the broker (heartbeats) and holds the deliveries unacked (at
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
from dataclasses import dataclass, field
from typing import Callable, Sequence

from eventreplay.ingest.batch import Batch
from eventreplay.ingest.triage import refused_by_store
from eventreplay.retrying import Interrupted, RetryPolicy, one_line
from eventreplay.store import EventRejected, EventStore, NewEvent, StoreUnavailable

log = logging.getLogger("eventreplay.ingest")

CLOSE = None  # what a writer's queue of batches ends with

# The longest wait between write probes while a batch waits in place: how late at most the end of
# an outage is noticed. A probe is cheap and costs no redelivery, so no need to wait as long as
# between reconnects.
LONGEST_RETRY_DELAY = 5.0


@dataclass
class Appended:
    """What storing one batch's events did: `new` events stored (the others were stored already),
    the events the store refused for good (event_id -> why), and how long each commit took."""

    new: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    commits: list[float] = field(default_factory=list)


def append_events(store: EventStore, events: Sequence[NewEvent], no_more_retries: threading.Event) -> Appended:
    """Append the events; while the store is unavailable, wait until it passes a write probe (a read
    is no proof: a full disk still serves reads) and append them again (appends are idempotent),
    until told to stop retrying. Events the store refuses for good are left out (and named) and the
    rest is appended again."""
    retry = RetryPolicy(interrupt=no_more_retries, longest=LONGEST_RETRY_DELAY)
    done = Appended()

    def unavailable(error: BaseException, delay: float) -> None:
        log.warning("the event store takes no writes (%s); keeping the batch's %d events unacked, "
                    "next try in %.1f s", one_line(error), len(events), delay)

    try:
        for attempt in retry.retrying(StoreUnavailable, on_fault=unavailable):
            with attempt:
                if retry.failures:
                    store.probe_write()
                while events:
                    try:
                        started = time.perf_counter()
                        done.new = store.append(events)
                        done.commits.append(time.perf_counter() - started)
                        return done
                    except EventRejected as rejected:
                        kept = [event for event in events if event.event_id not in rejected.reasons]
                        if len(kept) == len(events):
                            raise  # it named none of ours: a store failure like any other
                        done.refused.update((event.event_id, rejected.reasons[event.event_id])
                                            for event in events if event.event_id in rejected.reasons)
                        events = kept
                return done
    except Interrupted as interrupted:
        raise interrupted.last_error from None
    raise AssertionError("unreachable")


def serve(store: EventStore, receive: Callable[[], Sequence[NewEvent] | None],
          send: Callable[[Appended | BaseException], None], no_more_retries: threading.Event) -> None:
    """A writer's loop: append each batch's events as they come until CLOSE; after a final failure
    append nothing more (a later batch stored and acked would be acked out of order) and answer
    every later batch with that failure."""
    failure: BaseException | None = None
    while (events := receive()) is not CLOSE:
        if failure is None:
            try:
                result: Appended | BaseException = append_events(store, events, no_more_retries)
            except BaseException as error:  # noqa: BLE001 - handed to the connection's thread
                failure = result = error
        else:
            result = failure
        send(result)


class BatchWriter:
    """What the connection's thread sees of a writer: submit batches, take results in order."""

    def __init__(self, wake: Callable[[], None], on_commit: Callable[[float], None] | None = None,
                 no_more_retries=None):
        self._wake, self._on_commit = wake, on_commit  # on_commit: seconds of one commit (ingest metrics)
        self._done: collections.deque[tuple[Batch, int | BaseException]] = collections.deque()
        self.pending = 0  # submitted, result not yet taken (used by the connection's thread only)
        # an Event (threading's, or multiprocessing's for a writer in another process)
        self._no_more_retries = no_more_retries or threading.Event()

    def submit(self, batch: Batch) -> None:
        raise NotImplementedError

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
        """Finish the append in progress (never abandon it half-way), retry nothing, end."""
        raise NotImplementedError

    def _finished(self, batch: Batch, result: Appended | BaseException) -> None:
        """Called by the writer's own thread: the batch's result, then a wake-up of the connection's
        thread. Events the store refused become dead letters of the batch (published and confirmed
        before the ack)."""
        if isinstance(result, Appended):
            if result.refused:
                batch.dead_letters += [refused_by_store(event, result.refused[event.event_id])
                                       for event in batch.events if event.event_id in result.refused]
                batch.events = [event for event in batch.events if event.event_id not in result.refused]
            if self._on_commit is not None:
                for seconds in result.commits:
                    self._on_commit(seconds)
        self._done.append((batch, result.new if isinstance(result, Appended) else result))
        try:
            self._wake()
        except Exception:  # noqa: BLE001 - the connection is gone; nobody is waiting any more
            pass


class ThreadBatchWriter(BatchWriter):
    def __init__(self, store: EventStore, wake: Callable[[], None],
                 on_commit: Callable[[float], None] | None = None):
        super().__init__(wake, on_commit)
        self.store = store
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._in_flight: collections.deque[Batch] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self.pending += 1
        self._in_flight.append(batch)
        self._todo.put(batch.events)

    def close(self) -> None:
        self.stop_retrying()
        self._todo.put(CLOSE)
        self._thread.join()

    def _run(self) -> None:
        serve(self.store, self._todo.get, lambda result: self._finished(self._in_flight.popleft(), result),
              self._no_more_retries)
