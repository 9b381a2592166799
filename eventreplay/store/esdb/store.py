"""The EventStoreDB backend (esdbclient), for `esdb://` and `esdb+discover://` URLs.

Events: one stream per routing key (mapping.py, README "Using EventStoreDB"); position = commit
position. Private records (replay jobs, and this store's own indexes and tallies) live in streams
`private_stream(name)` with types `private_type(kind)`, which reads of archived events leave out
server-side.

The archive over the years, each in its module:
- appends.py: deduplication, the events, their links.  ids.py: the id index (a stream per id).
- links.py: payload-field indexes as link events.  fields.py: which fields, and their backfill.
- tally.py: counts per type and time blocks, checkpointed.  reads.py: which path serves a query.
- retention.py: prune as rules plus `$tb`; the space comes back at the next scavenge.
- log.py: chunked reads of `$all`.  recent_ids.py: the window of recent ids.  lookup.py: get.
- multi_append.py: many appends to many streams in one BatchAppend call.

Exactly-once by event_id. EventStoreDB has no unique index on event ids; the id index gives it one:
an event is stored only after its id stream was created with expected version `no_stream`, which
one writer alone can do (ids.py). A window of the last `window_size` archived ids (recent_ids.py),
fed by reading `$all` forwards before and after every append, skips re-deliveries of recent events
without a round trip. So:
- a re-delivery of any event archived with its id stream is skipped, however old;
- two writers appending the same new id at once store it once: the second one finds the first
  one's claim without its link and answers StoreUnavailable (retry) while the claim is younger than
  IN_FLIGHT_S (30 s, by the server's clock against ours); an older bare claim is the leftover of a
  writer that failed, and is claimed over when the event is not stored;
- events archived before this version have no id stream until `reindex`: until then a re-delivery
  older than the window can be stored twice, and `get` of such an event scans `$all`;
- a re-delivered event that the retention deleted is stored again (as in SQLite), except within the
  window, where it is skipped.

Atomicity: one append per routing-key stream of the batch, each all-or-nothing (split above ~900 KB),
all sent in one call. A batch spanning streams can be stored in part when the store fails midway;
those parts are in the window at once, so the retry (the consumer's redelivery) stores exactly the
rest and writes the links the failed attempt left out. Order is kept per stream; across streams,
events of one batch get positions grouped by stream.

What the indexes cost ingest: per archived event one claim and one id link, and one link per indexed
field it has (~150 bytes each in the log); per batch three BatchAppend calls besides the events' own
(claims, key links, id links), one read of the `index-fields` record, and the reads of `$all` before
and after (the second reads the batch back for its positions). Measured on the test emulator
(batches of 500 simulator-like events, same run, relative only): 25% of the former append rate
with the id index alone, 17% with `order_id` and `user_id` indexed too (5% if the link appends went
one call per stream on a thread pool instead of one BatchAppend). The emulator pays in Python for
every write; EventStoreDB commits small writes in groups. Acceptable because the cost is a constant
per event, never a function of the archive's size, and buys what the archive needs over years:
dedup and `get` by id at any age, indexed matches in O(matches), counts without scans; and the
rate left (several hundred events/s on the emulator) is far above the shop's traffic (5 events/s,
bursts of 200).

Reads (reads.py): indexed matches through their key streams, type counts from the tally, the rest a
chunked, type-filtered scan of `$all` bounded by the time blocks of its window.
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable, Iterator, Sequence

from esdbclient import EventStoreDBClient
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.events import RecordedEvent

from eventreplay.schema import canonical_uuid
from eventreplay.store.base import (
    ArchiveSpan, EventQuery, EventRejected, EventStore, FieldIndex, InvalidStoreURL, NewEvent, PersistenceError,
    StoredEvent, StoreUnavailable,
)
from eventreplay.store.esdb import fields as field_records
from eventreplay.store.esdb import lookup, per_minute, retention
from eventreplay.store.esdb.appends import Appender
from eventreplay.store.esdb.ids import IdIndex
from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import (
    MAX_APPEND_BYTES, PRIVATE_TYPE_PREFIX, archived_event, from_us, private_stream, to_esdb, translate, weight,
)
from eventreplay.store.esdb.reads import Plan, Sources
from eventreplay.store.esdb.recent_ids import RecentIds
from eventreplay.store.esdb.records import Records
from eventreplay.store.esdb.tally import Tally


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
        self._records = Records(self.client, stream_prefix, self._timeout)
        self._tally = Tally(self._records)
        self._ids = IdIndex(self.client, stream_prefix, self._timeout)
        self._appender = Appender(self)
        self._appended = False  # an appending instance keeps the tally's checkpoints
        self._minute_counts = per_minute.MinuteCounts(self._log, stream_prefix)  # the ingest chart's, kept

    @property
    def stream_prefix(self) -> str:
        return self._prefix

    # private records (see the module docstring)

    def private_stream(self, name: str) -> str:
        return private_stream(self._prefix, name)

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
        if self._appended and not self._closed:
            try:
                with self._tally.lock:
                    self._tally.save(force=True)
            except Exception:  # noqa: BLE001 - a checkpoint is an optimisation; the next one comes
                pass
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
        return self._commit_position()

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

    # following the log: the window and the tally see every archived event once ---------------

    def _follow(self, *, window: bool, collect: set[str] | None = None
                ) -> dict[str, tuple[RecordedEvent, StoredEvent]]:
        """Read `$all` forwards from where the tally (and, appending, the window) stopped."""
        found: dict[str, tuple[RecordedEvent, StoredEvent]] = {}
        with self._tally.lock:
            tally = self._tally
            tally.load()
            start = tally.position
            if window:
                self._window.seed(self._log, self._commit_position)
                start = min(start, self._window.hwm)
            for recorded in self._log.scan(after=start):
                stored = archived_event(recorded, self._prefix)
                at = recorded.commit_position
                if window and at > self._window.hwm:
                    if stored is not None:
                        self._window.remember(stored.event_id, at)
                    self._window.hwm = at
                tally.fold(recorded, stored)
                if collect and stored is not None and stored.event_id in collect:
                    found[stored.event_id] = (recorded, stored)
        return found

    def _tally_now(self) -> Tally:
        self._follow(window=False)
        return self._tally

    def _archive_empty(self) -> bool:
        tally = self._tally_now()
        with tally.lock:
            return not any(tally.counts.values())

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
            return self._appender.append(prepared)

    # reads

    def _sources(self) -> Sources:
        coverage = field_records.read(self._records)
        return Sources(self.client, self._log, self._prefix, self._timeout, retention.current(self._records),
                       coverage.ready_fields if coverage else frozenset(), self._tally_now)

    def _read(self, query: EventQuery) -> Iterator[StoredEvent]:
        yield from Plan(query, self._sources()).events()

    def count(self, query: EventQuery = EventQuery()) -> int:
        return Plan(query, self._sources()).count()

    def reads_everything(self, query: EventQuery) -> bool:
        return Plan(query, self._sources()).reads_everything

    def counts_by_type(self) -> dict[str, int]:
        return self._counts(retention.current(self._records))

    def _counts(self, state: retention.Retention) -> dict[str, int]:
        tally = self._tally_now()
        with tally.lock:
            counts = dict(tally.counts)
        left = {t: n - state.removed.get(t, 0) for t, n in counts.items()}
        return {t: n for t, n in sorted(left.items()) if n > 0}

    def get(self, event_id: str) -> StoredEvent | None:
        try:
            key = canonical_uuid(event_id)
        except ValueError:
            return None
        return lookup.get(self, key)

    def _commit_position(self) -> int:
        try:
            return self.client().get_commit_position(timeout=self._timeout) or 0
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, "reading the commit position") from None

    # the archive over the years

    def span(self) -> ArchiveSpan:
        state = retention.current(self._records)
        events = sum(self._counts(state).values())
        with self._tally.lock:
            self._tally.refresh_blocks()
        oldest, newest = (retention.edge(self._tally, self._log, self._prefix, state, newest=flag)
                          for flag in (False, True))
        return ArchiveSpan(events=events, oldest=oldest, newest=newest,
                           pruned_before=from_us(state.pruned_before_us) if state.pruned_before_us is not None else None)

    def _counts_per_minute(self, start: datetime, minutes: int) -> list[int]:
        return self._minute_counts.counts(retention.current(self._records), start, minutes)

    def prune(self, before: datetime, *, event_types: tuple[str, ...] | None = None,
              except_types: tuple[str, ...] = (), stop: threading.Event | None = None) -> int:
        tally = self._tally_now()
        with tally.lock:
            tally.refresh_blocks()
        deleted, state = retention.prune(self._records, self._log, tally, self._prefix, before,
                                         event_types=event_types, except_types=tuple(except_types), stop=stop)
        with tally.lock:
            streams = set(tally.streams)
        retention.truncate(self.client, self._timeout, streams, self._prefix, state, stop)
        return deleted

    def index_fields(self, fields: Sequence[str]) -> None:
        field_records.change(self._records, list(fields), self._archive_empty)

    def field_indexes(self) -> list[FieldIndex]:
        return field_records.field_indexes(field_records.read(self._records))

    def reindex(self, *, progress: Callable[[int, int], None] | None = None,
                stop: threading.Event | None = None) -> int:
        return field_records.reindex(self._records, self._log, self._ids, self.client, self._prefix, self._timeout,
                              progress=progress, stop=stop)
