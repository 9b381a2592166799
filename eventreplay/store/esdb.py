"""The EventStoreDB backend (esdbclient), for `esdb://` and `esdb+discover://` URLs.

Mapping (README, "Using EventStoreDB"): stream = stream prefix + routing key (`misc-events` for a routing key
that is no usable stream name: empty, or starting with `$`, which EventStoreDB reserves); event id =
UUID(event_id); type = event_type; data = the original body bytes (application/json); metadata = JSON
`{routing_key, exchange, properties, received_at, timestamp, "eventreplay": 1}`; position = commit
position. Only events carrying the `"eventreplay": 1` marker (and, with a prefix, in a stream of that
prefix) are archived events; system events (`$...`) and private records never are.

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

import json
import re
import threading
import uuid
from collections import Counter, OrderedDict
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import grpc
from esdbclient import EventStoreDBClient, StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.events import RecordedEvent
from esdbclient import exceptions as esdb_errors

from eventreplay.schema import canonical_uuid
from eventreplay.store.base import (
    EventQuery,
    EventRejected,
    EventStore,
    InvalidStoreURL,
    NewEvent,
    PersistenceError,
    StoredEvent,
    StoreUnavailable,
)

MARKER = "eventreplay"
MISC_STREAM = "misc-events"
PRIVATE_TYPE_PREFIX = "eventreplay."
# System types, esdbclient's persistent-subscription config events, and our private records.
EXCLUDED_TYPES = (r"\$.*", r"PersistentConfig\d+", re.escape(PRIVATE_TYPE_PREFIX) + ".*")
_EXCLUDED_TYPE = re.compile("|".join(f"(?:{p})" for p in EXCLUDED_TYPES))
# EventStoreDB refuses appends over 1 MiB (--max-append-size); stay under it with room for framing.
MAX_APPEND_BYTES = 900_000

_TRANSIENT = (
    esdb_errors.ServiceUnavailable,
    esdb_errors.DeadlineExceeded,
    esdb_errors.DiscoveryFailed,
    esdb_errors.NodeIsNotLeader,
    esdb_errors.AbortedByServer,
    esdb_errors.CancelledByClient,
    esdb_errors.GrpcError,  # other transport-level gRPC statuses (UNKNOWN, INTERNAL, ...)
    grpc.RpcError,
)


def translate(error: Exception, doing: str) -> PersistenceError:
    reason = str(error) or type(error).__name__
    message = f"EventStoreDB store: {doing} failed: {type(error).__name__}: {reason}"
    if isinstance(error, _TRANSIENT):
        return StoreUnavailable(message)
    if isinstance(error, ValueError) and "hannel closed" in reason:
        return StoreUnavailable(message)
    return PersistenceError(message)


def _iso(moment: datetime) -> str:
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return aware.astimezone(timezone.utc).isoformat()


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def stream_for(prefix: str, routing_key: str) -> str:
    usable = bool(routing_key) and not routing_key.startswith("$") and routing_key.isprintable()
    return prefix + (routing_key if usable else MISC_STREAM)


class EventStoreDBEventStore(EventStore):
    def __init__(self, uri: str, *, stream_prefix: str = "", window_size: int = 100_000,
                 read_chunk: int = 1000, timeout_s: float | None = None):
        try:
            spec = ConnectionSpec(uri)
        except (ValueError, TypeError) as error:
            raise InvalidStoreURL(f"invalid EventStoreDB URL {uri!r}: {error}") from None
        self._uri = uri
        self._prefix = stream_prefix
        self._window_size = window_size
        self._read_chunk = read_chunk
        # Without a deadline a server that accepts the connection but never answers hangs the caller
        # forever; esdbclient's own default is none. DefaultDeadline in the URL wins.
        self._timeout = float(spec.options.DefaultDeadline) if spec.options.DefaultDeadline else (timeout_s or 30.0)
        self._client: EventStoreDBClient | None = None
        self._client_lock = threading.Lock()
        self._closed = False
        # The recent-id window: event id -> commit position (None until seen in a read).
        self._window: OrderedDict[str, int | None] = OrderedDict()
        self._window_lock = threading.RLock()  # also serialises appends, which check then extend it
        self._window_seeded = False
        self._window_complete = False  # it holds every archived event (the archive is small)
        self._window_hwm = 0  # commit position up to which the window has looked
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

    # mapping

    def _to_esdb(self, event: NewEvent, event_id: uuid.UUID) -> ESDBNewEvent:
        metadata = {
            "routing_key": event.routing_key,
            "exchange": event.exchange,
            "properties": dict(event.properties),
            "received_at": _iso(event.received_at),
            "timestamp": _iso(event.timestamp),
            MARKER: 1,
        }
        return ESDBNewEvent(
            type=event.event_type,
            data=bytes(event.body),
            metadata=json.dumps(metadata, ensure_ascii=False, default=str).encode(),
            content_type="application/json",
            id=event_id,
        )

    def _is_archived(self, recorded: RecordedEvent) -> bool:
        if _EXCLUDED_TYPE.fullmatch(recorded.type):
            return False
        return not self._prefix or recorded.stream_name.startswith(self._prefix)

    def _from_esdb(self, recorded: RecordedEvent) -> StoredEvent | None:
        """None for events that are not ours (no marker, other prefix, system, job records)."""
        if not self._is_archived(recorded):
            return None
        try:
            metadata = json.loads(recorded.metadata) if recorded.metadata else None
        except ValueError:
            return None
        if not isinstance(metadata, dict) or metadata.get(MARKER) != 1:
            return None
        try:
            return StoredEvent(
                position=recorded.commit_position,
                event_id=str(recorded.id),
                event_type=recorded.type,
                timestamp=_parse_time(metadata["timestamp"]),
                body=recorded.data,
                routing_key=metadata["routing_key"],
                exchange=metadata["exchange"],
                received_at=_parse_time(metadata["received_at"]),
                properties=metadata.get("properties") or {},
            )
        except (KeyError, TypeError, ValueError):
            return None

    def _filters(self, event_types: tuple[str, ...] | None) -> dict[str, Any]:
        if event_types is not None:
            # esdbclient joins include patterns as "^a|b$", which anchors only the ends; one group does it.
            pattern = "(?:" + "|".join(re.escape(t) for t in event_types) + ")"
            return {"filter_include": (pattern,), "filter_exclude": (), "filter_by_stream_name": False}
        if self._prefix:
            # Shared servers hold other prefixes' events; the server drops them before sending.
            return {"filter_include": (re.escape(self._prefix) + ".*",), "filter_exclude": (),
                    "filter_by_stream_name": True}
        return {"filter_include": (), "filter_exclude": EXCLUDED_TYPES, "filter_by_stream_name": False}

    # chunked reads of $all

    def _chunk(self, *, position: int | None, backwards: bool, filters: dict[str, Any],
               limit: int) -> list[RecordedEvent]:
        try:
            response = self.client().read_all(
                commit_position=position, backwards=backwards, limit=limit, timeout=self._timeout, **filters
            )
            try:
                return list(response)
            finally:
                response.stop()
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, "reading $all") from None

    def _scan(self, *, after: int | None = None, before: int | None = None, backwards: bool = False,
              event_types: tuple[str, ...] | None = None) -> Iterator[RecordedEvent]:
        """Raw recorded events matching the server-side filter, forwards from after `after`
        (exclusive) or backwards from before `before` (exclusive), chunk by chunk."""
        filters = self._filters(event_types)
        position = before if backwards else after
        while True:
            chunk = self._chunk(position=position, backwards=backwards, filters=filters, limit=self._read_chunk)
            for recorded in chunk:
                at = recorded.commit_position
                # A forwards read from a position includes the event there; skip what we had.
                if position is not None and (at >= position if backwards else at <= position):
                    continue
                yield recorded
            if len(chunk) < self._read_chunk:
                return
            position = chunk[-1].commit_position

    # the recent-id window

    def _remember(self, event_id: str, position: int | None) -> None:
        window = self._window
        if event_id in window:
            if position is not None:
                window[event_id] = position
            return
        window[event_id] = position
        if len(window) > self._window_size:
            window.popitem(last=False)
            self._window_complete = False

    def _sync_window(self) -> None:
        """Seed the window once (backwards), then catch up forwards with what anyone appended."""
        with self._window_lock:
            if not self._window_seeded:
                try:
                    hwm = self.client().get_commit_position(timeout=self._timeout)
                except PersistenceError:
                    raise
                except Exception as error:  # noqa: BLE001
                    raise translate(error, "reading the commit position") from None
                newest_first: list[tuple[str, int]] = []
                complete = True
                for recorded in self._scan(backwards=True):
                    stored = self._from_esdb(recorded)
                    if stored is None:
                        continue
                    if len(newest_first) >= self._window_size:
                        complete = False
                        break
                    newest_first.append((stored.event_id, stored.position))
                self._window.clear()
                for event_id, position in reversed(newest_first):
                    self._remember(event_id, position)
                self._window_complete = complete
                self._window_hwm = max(hwm, newest_first[0][1] if newest_first else 0)
                self._window_seeded = True
            for recorded in self._scan(after=self._window_hwm):
                stored = self._from_esdb(recorded)
                if stored is not None:
                    self._remember(stored.event_id, stored.position)
                self._window_hwm = max(self._window_hwm, recorded.commit_position)

    # writes

    def append(self, events: Sequence[NewEvent]) -> int:
        prepared: list[tuple[str, NewEvent]] = []
        for event in events:
            prepared.append((canonical_uuid(event.event_id), event))
        if not prepared:
            return 0
        oversized = {
            event_id: f"the event takes {size:,} bytes with its metadata; EventStoreDB takes at most "
                      f"{MAX_APPEND_BYTES:,} per event here (its append limit is 1 MiB)"
            for event_id, event in prepared
            if (size := self._weight(self._to_esdb(event, uuid.UUID(event_id)))) > MAX_APPEND_BYTES
        }
        if oversized:
            raise EventRejected(oversized)
        with self._window_lock:
            self._sync_window()
            known_until = self._window_hwm
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

    @staticmethod
    def _weight(event: ESDBNewEvent) -> int:
        return len(event.data) + len(event.metadata) + len(event.type) + 100

    def _parts(self, items: list[tuple[str, NewEvent]]) -> Iterator[list[tuple[str, ESDBNewEvent]]]:
        part: list[tuple[str, ESDBNewEvent]] = []
        size = 0
        for event_id, event in items:
            converted = self._to_esdb(event, uuid.UUID(event_id))
            weight = self._weight(converted)
            if part and size + weight > MAX_APPEND_BYTES:
                yield part
                part, size = [], 0
            part.append((event_id, converted))
            size += weight
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
            self._remember(event_id, None)
        self._remember(part[-1][0], position)
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
            self._remember(event_id, position)
        return new

    # reads

    def read(self, query: EventQuery = EventQuery()) -> Iterator[StoredEvent]:
        if self._closed:
            raise PersistenceError("EventStoreDB store is closed")
        return self._read(query)

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        if query.selects_nothing:
            return
        check = query.since is not None or query.until is not None or bool(query.match)
        produced = 0
        for recorded in self._scan(after=query.after_position, event_types=query.event_types):
            if query.up_to_position is not None and recorded.commit_position > query.up_to_position:
                return
            stored = self._from_esdb(recorded)
            if stored is None:
                continue
            if query.event_types is not None and stored.event_type not in query.event_types:
                continue
            if check and not query.matches(stored):
                continue
            yield stored
            produced += 1
            if query.limit is not None and produced >= query.limit:
                return

    def count(self, query: EventQuery = EventQuery()) -> int:
        return sum(1 for _ in self.read(query))

    def counts_by_type(self) -> dict[str, int]:
        with self._tally_lock:
            for recorded in self._scan(after=self._tally_position):
                stored = self._from_esdb(recorded)
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
            position = self._window.get(key)
            if not in_window and self._window_complete:
                return None
            oldest = next((p for p in self._window.values() if p is not None), None) if not in_window else None
        if position is not None:
            for recorded in self._chunk(position=position, backwards=False, filters=self._filters(None), limit=1):
                stored = self._from_esdb(recorded)
                if stored is not None and stored.event_id == key:
                    return stored
        # Backwards: recent ids are found quickly; an id older than the window is only searched
        # before the window's oldest event.
        for recorded in self._scan(backwards=True, before=oldest):
            if str(recorded.id) == key:
                return self._from_esdb(recorded)
        return None


__all__ = ["EventStoreDBEventStore", "stream_for"]
