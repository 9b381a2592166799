"""The batch writer in a child process (WRITER_PROCESS, the default of `python consumer.py`).

Why a process: one consumer process drains a backlog with its two threads taking turns on one core
(pika's frame decoding and each body's validation in the connection's thread, the store's Python
work in the writer thread: both need the GIL), while the second core waits. Here the child opens
a store of its own from EVENT_STORE_URL and stores on the other core; the consumer's threads keep
the GIL to receive and triage.

What crosses the pipes: each batch's events as plain tuples (the parsed payload is left behind: the
child reads the indexed fields from the body again, cheaper than pickling the parsed object), then
back the Appended of each batch, or the error. A thread on each side reads its pipe at once, so
neither side ever blocks writing while the other is busy storing.

Faults: the child ignores SIGINT and SIGTERM (Ctrl-C reaches the whole process group): the consumer
decides when it ends, by closing its pipe, and the child finishes the append in progress first. If
the consumer is killed, the child sees its pipe end, finishes the append in progress and exits; the
unacked deliveries come back from RabbitMQ and the store dedups them. If the child dies, every batch
in flight and every later one gets a PersistenceError: the consumer reconnects as after any store
failure, with a new child.
"""
from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import queue
import signal
import threading
from multiprocessing.connection import Connection
from typing import Callable

from eventreplay.ingest.batch import Batch
from eventreplay.ingest.writer import CLOSE, Appended, BatchWriter, serve
from eventreplay.store import NewEvent, PersistenceError

log = logging.getLogger("eventreplay.ingest")

# A server process, started once, forks the children: they start in milliseconds, without the threads
# (and their locks) of the consumer.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])

# how long close() waits for the child to finish its append before killing it
CLOSE_TIMEOUT = 120.0


class ProcessBatchWriter(BatchWriter):
    def __init__(self, store_url: str, indexed_fields: tuple[str, ...], wake: Callable[[], None],
                 on_commit: Callable[[float], None] | None = None, log_level: str = "INFO"):
        super().__init__(wake, on_commit, no_more_retries=_CONTEXT.Event())
        child_reads, we_send = _CONTEXT.Pipe(duplex=False)  # batches
        we_read, child_sends = _CONTEXT.Pipe(duplex=False)  # results
        self._process = _CONTEXT.Process(
            target=_child, name="eventreplay-store-writer", daemon=True,
            args=(store_url, indexed_fields, log_level, child_reads, child_sends, self._no_more_retries),
        )
        try:
            self._process.start()
        except OSError as error:  # no process to be had now (EAGAIN, EMFILE): the consumer retries later
            for end in (child_reads, we_send, we_read, child_sends):
                end.close()
            raise PersistenceError(f"cannot start the store's writer process: {error}") from None
        child_reads.close()  # the child's ends: once the child ends, our reads see the end of the pipe
        child_sends.close()
        self._batches, self._results = we_send, we_read
        self._in_flight: collections.deque[Batch] = collections.deque()
        self._lock = threading.Lock()
        self._ended: BaseException | None = None  # the child is gone: every batch gets this
        self._reader = threading.Thread(target=self._read_results, name="batch-writer-results", daemon=True)
        self._reader.start()

    def submit(self, batch: Batch) -> None:
        self.pending += 1
        with self._lock:
            if self._ended is not None:
                self._finished(batch, self._ended)
                return
            self._in_flight.append(batch)
        try:
            self._batches.send([_plain(event) for event in batch.events])
        except OSError:
            pass  # the child is gone; the results' reader answers the batch in flight

    def close(self) -> None:
        self.stop_retrying()
        try:
            self._batches.send(CLOSE)
        except OSError:
            pass
        self._process.join(CLOSE_TIMEOUT)
        if self._process.is_alive():
            log.error("the store's writer process did not end within %.0f s; killing it", CLOSE_TIMEOUT)
            self._process.kill()
            self._process.join()
        self._reader.join()
        self._batches.close()

    def _read_results(self) -> None:
        while True:
            try:
                result = self._results.recv()
            except (EOFError, OSError):
                break
            except Exception as error:  # noqa: BLE001 - a result that does not unpickle fails its batch
                result = PersistenceError(f"unreadable result from the store's writer process: {error}")
            self._finished(self._in_flight.popleft(), result)
        self._process.join(5.0)  # it closed its pipe because it ended: its exit code is at hand
        error = PersistenceError(f"the store's writer process ended (exit code {self._process.exitcode})")
        with self._lock:
            self._ended = error
            in_flight, self._in_flight = self._in_flight, collections.deque()
        for batch in in_flight:
            self._finished(batch, error)
        self._results.close()


def _plain(event: NewEvent) -> tuple:
    # NewEvent's fields in their declared order, without the payload: the child calls NewEvent(*fields)
    return (event.event_id, event.event_type, event.timestamp, event.body, event.routing_key, event.exchange,
            event.received_at, event.properties)


def _child(store_url: str, indexed_fields: tuple[str, ...], log_level: str, batches: Connection,
           results: Connection, no_more_retries) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    from eventreplay.logs import configure_logging
    from eventreplay.store import open_store

    configure_logging(log_level)
    todo: queue.SimpleQueue = queue.SimpleQueue()

    def read_batches() -> None:
        while True:
            try:
                plain = batches.recv()
            except (EOFError, OSError):  # the consumer is gone: finish what came, then end
                plain = CLOSE
            todo.put(CLOSE if plain is CLOSE else [NewEvent(*fields) for fields in plain])
            if plain is CLOSE:
                return

    threading.Thread(target=read_batches, name="batches", daemon=True).start()

    def send(result: Appended | BaseException) -> None:
        try:
            results.send(result)
        except (OSError, ValueError):
            pass  # the consumer is gone
        except Exception as error:  # noqa: BLE001 - an error that does not pickle is still said
            results.send(PersistenceError(f"{type(error).__name__}: {error}"))

    try:
        store = open_store(store_url)
    except PersistenceError as error:
        _answer_with(error, todo, send)
        return
    try:
        store.index_fields(indexed_fields)
        log.info("storing batches in writer process %d", os.getpid())
        serve(store, todo.get, send, no_more_retries)
    except PersistenceError as error:  # from index_fields: serve() hands its errors over
        _answer_with(error, todo, send)
    finally:
        store.close()


def _answer_with(error: PersistenceError, todo: queue.SimpleQueue, send) -> None:
    """The store could not be opened: every batch fails with why (the consumer then reconnects, once
    the store passes a write probe)."""
    while todo.get() is not CLOSE:
        send(error)
