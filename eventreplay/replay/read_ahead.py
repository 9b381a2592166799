"""Reading a replay's events ahead of publishing, in a thread of its own.

While the store takes long to find the next match (a sparse type, a payload match filtered row by
row), the publishing thread keeps serving its broker connection (heartbeats, confirms) through the
`idle` callback instead of waiting inside the store's read. A bounded queue keeps memory flat.
Events travel in chunks (a queue operation per event costs more than publishing it), but a chunk
goes at once whenever the publishing thread has nothing left to do.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

from eventreplay.store.base import EventQuery, EventStore, StoredEvent

READ_AHEAD = 2048  # events read ahead of publishing at most
READ_CHUNK = 256
IDLE_STEP = 0.1  # seconds the publishing thread waits for the reader before calling `idle`

_END_OF_READ = object()


def closing(events: Iterator[StoredEvent]) -> Iterator[StoredEvent]:
    """Iterate and always close the store's stream (ends a server-side read early on a stop)."""
    try:
        yield from events
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def read_ahead(store: EventStore, query: EventQuery, *, idle: Callable[[], None],
               name: str = "replay-read") -> Iterator[StoredEvent]:
    """The events of `query`, read by a thread while the caller consumes them. A store error is
    raised in the caller's thread, where the reading stopped. Closing the iterator stops the
    reader."""
    feed: queue.Queue = queue.Queue(maxsize=READ_AHEAD // READ_CHUNK)
    halt = threading.Event()

    def offer(item) -> bool:
        while not halt.is_set():
            try:
                feed.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            chunk: list[StoredEvent] = []
            for event in closing(store.read(query)):
                chunk.append(event)
                if len(chunk) >= READ_CHUNK or feed.empty():
                    if not offer(chunk):
                        return
                    chunk = []
            if chunk and not offer(chunk):
                return
            offer(_END_OF_READ)
        except BaseException as error:  # noqa: BLE001 - handed over to the consuming thread
            offer(error)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = feed.get(timeout=IDLE_STEP)
            except queue.Empty:
                idle()
                continue
            if item is _END_OF_READ:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        halt.set()
        reader.join(timeout=10)
