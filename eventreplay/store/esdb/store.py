"""The EventStoreDB backend (esdbclient), for `esdb://` and `esdb+discover://` URLs.

How events map to streams and back: mapping.py (README, "Using EventStoreDB"). Chunked reads of
`$all`: log.py. The window of recent ids: recent_ids.py.

Private records: what other parts of this program keep in the same EventStoreDB (replay jobs) lives
in streams `private_stream(name)` with types `private_type(kind)`; reads of archived events leave
them out, server-side where the filter allows. The store knows the namespace, not its contents.

Exactly-once — weaker than SQLite, say it plainly:
EventStoreDB has no unique index on event ids. With expected version ANY it only recognises a
re-append through a cache of recently committed ids, and a batch mixing stored and new ids is either
rejected (wrong expected version) or written again in full. So the store keeps its own window of the
last `window_size` (default 100,000) archived event ids: seeded by a backwards read of `$all` on the
first append or get, and brought up to date before every append by reading `$all` forwards from where
it last looked (so events written by other consumers, or by an append whose answer was lost, are seen
too). Ids in the window and repeats within the batch are dropped before appending. If EventStoreDB still
answers wrong-expected-version (a race with another writer), the events are appended one at a time,
which EventStoreDB treats idempotently for ids it committed recently.
- Exact for re-deliveries of any event among the last `window_size` archived events, which covers
  broker redelivery (minutes) by orders of magnitude.
- Older re-deliveries, or two writers appending the same id at the same instant, can store a duplicate
  (SQLite never does).
- The returned count is exact except in that same race.

Atomicity: one append call per stream (routing key) of the batch, each all-or-nothing (an append over
~900 KB is split into several). A batch spanning streams can be stored in part when the store fails
midway; the ids of the parts that were stored enter the window at once, so the retry of the whole batch
(the consumer's redelivery) stores exactly the rest. Within a batch, order is kept per stream;
across streams, events of one batch get positions grouped by stream.

Reads are filtered server-side by event type (or, with a prefix and no types, by stream name) and
fetched in chunks of `read_chunk` events, one short gRPC call per chunk: memory stays flat and no call
lives long enough to hit a deadline while a slow consumer (a replay publishing) drains the iterator.
Time window and payload match are checked client-side.

`get(event_id)`: EventStoreDB has no index by id. Ids in the window are answered from it (a missing id
is known missing when the window holds the whole archive); anything older is a backwards scan of
`$all`, O(size of the archive).
`count`: a streaming scan. `counts_by_type`: a tally kept in this instance, updated from the position
it last saw, so repeated calls only read new events.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Iterator, Sequence

from esdbclient import EventStoreDBClient, StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.connection_spec import ConnectionSpec

from eventreplay.schema import canonical_uuid
from eventreplay.store.base import (
    EventQuery, EventRejected, EventStore, InvalidStoreURL, NewEvent, PersistenceError, StoredEvent, StoreUnavailable,
)
from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import (
    MAX_APPEND_BYTES, PRIVATE_TYPE_PREFIX, archived_event, server_filters, stream_for, to_esdb, translate, weight,
)
from eventreplay.store.esdb.recent_ids import RecentIds


class EventStoreDBEventStore(EventStore):
    name = "EventStoreDB store"

    def __init__(self, uri: str, *, stream_prefix: str = "", window_size: int = 100_000,
                 read_chunk: int = 1000, timeout_s: float | None = None):
        try:
            spec = ConnectionSpec(uri)
        except (ValueError, TypeError) as error:
            raise InvalidStoreURL(f"invalid EventStoreDB URL {uri!r}: {error}") from None
        self._uri = uri
        self._prefix = stream_prefix
        # Without a deadline a server that accepts the connection but never answers hangs the caller
        # forever; esdbclient's own default is none. DefaultDeadline in the URL wins.
        self._timeout = float(spec.options.DefaultDeadline) if spec.options.DefaultDeadline else (timeout_s or 30.0)
        self._client: EventStoreDBClient | None = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._log = LogReader(self.client, prefix=stream_prefix, timeout=self._timeout, chunk=read_chunk)
        self._window = RecentIds(window_size, stream_prefix)
        self._window_lock = threading.RLock()  # also serialises appends, which check then extend it
        self._tally: Counter[str] = Counter()
        self._tally_position: int | None = None
        self._tally_lock = threading.Lock()

    @property
    def stream_prefix(self) -> str:
        return self._prefix

    # private records (see the module docstring)

    def private_stream(self, name: str) -> str:
        return f"{self._prefix}eventreplay-{name}"

    @staticmethod
    def private_type(kind: str) -> str:
        return PRIVATE_TYPE_PREFIX + kind

    # connection

    def client(self) -> EventStoreDBClient:
        """The one esdbclient client of this store (created on first use), for private records too."""
        if self._closed:
            raise PersistenceError("EventStoreDB store is closed")
        client = self._client
        if client is not None:
            return client
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = EventStoreDBClient(uri=self._uri)
                except Exception as error:  # noqa: BLE001 - discovery failures, bad certificates, ...
                    raise translate(error, f"connecting to {self._uri}") from None
            return self._client

    def close(self) -> None:
        self._closed = True
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def last_position(self) -> int:
        # The commit position of the newest non-system event of the whole log: with a stream prefix
        # it may be another prefix's event, which is still a correct upper bound for ours.
        try:
            return self.client().get_commit_position(timeout=self._timeout) or 0
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, "reading the last position") from None

    def ping(self) -> None:
        try:
            self.client().get_commit_position(timeout=min(self._timeout, 5.0))
        except PersistenceError as error:
            raise StoreUnavailable(str(error)) from None
        except Exception as error:  # noqa: BLE001
            raise StoreUnavailable(str(translate(error, "ping"))) from None

    def probe_write(self) -> None:
        """The same read as ping(): all the client can tell without appending. The disk is the
        server's and out of our sight, and a probe append would stay in the log for good (only a
        scavenge removes it); so the append retried after this probe is what proves the server
        takes writes again."""
        self.ping()

    # writes

    def append(self, events: Sequence[NewEvent]) -> int:
        prepared = [(canonical_uuid(event.event_id), event) for event in events]
        if not prepared:
            return 0
        oversized = {
            event_id: f"the event takes {size:,} bytes with its metadata; EventStoreDB takes at most "
                      f"{MAX_APPEND_BYTES:,} per event here (its append limit is 1 MiB)"
            for event_id, event in prepared
            if (size := weight(to_esdb(event, event_id))) > MAX_APPEND_BYTES
        }
        if oversized:
            raise EventRejected(oversized)
        with self._window_lock:
            self._sync_window()
            known_until = self._window.hwm
            by_stream: dict[str, list[tuple[str, NewEvent]]] = {}
            seen: set[str] = set()
            for event_id, event in prepared:
                if event_id in seen or event_id in self._window:
                    continue
                seen.add(event_id)
                by_stream.setdefault(stream_for(self._prefix, event.routing_key), []).append((event_id, event))
            new = 0
            for stream, items in by_stream.items():
                for part in self._parts(items):
                    new += self._append_part(stream, part, known_until)
            return new

    def _parts(self, items: list[tuple[str, NewEvent]]) -> Iterator[list[tuple[str, ESDBNewEvent]]]:
        part: list[tuple[str, ESDBNewEvent]] = []
        size = 0
        for event_id, event in items:
            converted = to_esdb(event, event_id)
            if part and size + weight(converted) > MAX_APPEND_BYTES:
                yield part
                part, size = [], 0
            part.append((event_id, converted))
            size += weight(converted)
        if part:
            yield part

    def _append_part(self, stream: str, part: list[tuple[str, ESDBNewEvent]], known_until: int) -> int:
        client = self.client()
        try:
            position = client.append_to_stream(
                stream, current_version=StreamState.ANY, events=[e for _, e in part], timeout=self._timeout
            )
        except esdb_errors.WrongCurrentVersion:
            return self._append_one_by_one(stream, part, known_until)
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"appending {len(part)} events to {stream!r}") from None
        for event_id, _ in part[:-1]:
            self._window.remember(event_id, None)
        self._window.remember(part[-1][0], position)
        return len(part)

    def _append_one_by_one(self, stream: str, part: list[tuple[str, ESDBNewEvent]], known_until: int) -> int:
        # Another writer stored some of these since the window looked. A single-event ANY append of
        # an id EventStoreDB committed recently returns that event's position without writing.
        client = self.client()
        new = 0
        for event_id, event in part:
            try:
                position = client.append_to_stream(
                    stream, current_version=StreamState.ANY, events=event, timeout=self._timeout
                )
            except Exception as error:  # noqa: BLE001
                raise translate(error, f"appending event {event_id} to {stream!r}") from None
            if position > known_until:
                new += 1
            self._window.remember(event_id, position)
        return new

    # reads

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        check = query.since is not None or query.until is not None or bool(query.match)
        for recorded in self._log.scan(after=query.after_position, event_types=query.event_types):
            if query.up_to_position is not None and recorded.commit_position > query.up_to_position:
                return
            stored = archived_event(recorded, self._prefix)
            if stored is None:
                continue
            if query.event_types is not None and stored.event_type not in query.event_types:
                continue
            if check and not query.matches(stored):
                continue
            yield stored

    def count(self, query: EventQuery = EventQuery()) -> int:
        return sum(1 for _ in self.read(query))

    def counts_by_type(self) -> dict[str, int]:
        with self._tally_lock:
            for recorded in self._log.scan(after=self._tally_position):
                stored = archived_event(recorded, self._prefix)
                if stored is not None:
                    self._tally[stored.event_type] += 1
                self._tally_position = recorded.commit_position
            return dict(sorted(self._tally.items()))

    def get(self, event_id: str) -> StoredEvent | None:
        try:
            key = canonical_uuid(event_id)
        except ValueError:
            return None
        with self._window_lock:
            self._sync_window()
            in_window = key in self._window
            position = self._window.position_of(key)
            if not in_window and self._window.complete:
                return None
            oldest = self._window.oldest_position() if not in_window else None
        if position is not None:
            filters = server_filters(self._prefix, None)
            for recorded in self._log.chunk(position=position, backwards=False, filters=filters, limit=1):
                stored = archived_event(recorded, self._prefix)
                if stored is not None and stored.event_id == key:
                    return stored
        # Backwards: recent ids are found quickly; an id older than the window is only searched
        # before the window's oldest event.
        for recorded in self._log.scan(backwards=True, before=oldest):
            if str(recorded.id) == key:
                return archived_event(recorded, self._prefix)
        return None

    def _sync_window(self) -> None:
        with self._window_lock:
            self._window.sync(self._log, self._commit_position)

    def _commit_position(self) -> int:
        try:
            return self.client().get_commit_position(timeout=self._timeout)
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, "reading the commit position") from None
