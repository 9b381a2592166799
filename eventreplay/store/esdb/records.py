"""The store's own durable records in EventStoreDB: small JSON events in private streams
(`{prefix}eventreplay-{name}`, types `eventreplay.{Kind}`), where the latest event of a stream is the
record (`$maxCount` keeps a few; the rest goes at the next scavenge), written with an expected
version so that two processes changing one record never overwrite each other unseen."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from esdbclient import EventStoreDBClient, StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.events import RecordedEvent

from eventreplay.store.base import PersistenceError
from eventreplay.store.esdb.mapping import PRIVATE_TYPE_PREFIX, private_stream, translate
from eventreplay.store.esdb.multi_append import Conflict

KEEP_RECORDS = 10


@dataclass(frozen=True, slots=True)
class Record:
    data: dict[str, Any]
    revision: int  # the version to expect when replacing it
    position: int  # commit position of the record event


class Records:
    def __init__(self, client: Callable[[], EventStoreDBClient], prefix: str, timeout: float):
        self._client, self._prefix, self._timeout = client, prefix, timeout

    def stream(self, name: str) -> str:
        return private_stream(self._prefix, name)

    def latest(self, name: str) -> Record | None:
        try:
            events = self._client().get_stream(self.stream(name), backwards=True, limit=1, timeout=self._timeout)
        except esdb_errors.NotFound:
            return None
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, f"reading the record {name!r}") from None
        if not events:
            return None
        return Record(json.loads(events[0].data), events[0].stream_position, events[0].commit_position or 0)

    def put(self, name: str, kind: str, data: dict[str, Any], expected: int | None, *,
            keep: int | None = KEEP_RECORDS) -> int:
        """Write the record, replacing the one at revision `expected` (None: there is none yet).
        Conflict when another writer got there first; returns the new record's commit position."""
        stream = self.stream(name)
        client = self._client()
        event = ESDBNewEvent(type=PRIVATE_TYPE_PREFIX + kind, data=json.dumps(data).encode())
        try:
            if expected is None and keep is not None:
                client.set_stream_metadata(stream, metadata={"$maxCount": keep}, timeout=self._timeout)
            return client.append_to_stream(
                stream, current_version=StreamState.NO_STREAM if expected is None else expected, events=[event],
                timeout=self._timeout)
        except esdb_errors.WrongCurrentVersion:
            raise Conflict(f"{name} changed meanwhile") from None
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"writing the record {name!r}") from None

    def add(self, name: str, kind: str, data: dict[str, Any]) -> int:
        """Append to a private log (no expected version, nothing replaced)."""
        event = ESDBNewEvent(type=PRIVATE_TYPE_PREFIX + kind, data=json.dumps(data).encode())
        try:
            return self._client().append_to_stream(self.stream(name), current_version=StreamState.ANY,
                                                   events=[event], timeout=self._timeout)
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"appending to {name!r}") from None

    def events(self, name: str, *, start: int = 0, chunk: int = 500) -> Iterator[RecordedEvent]:
        """A private stream forwards from revision `start`, chunk by chunk."""
        stream = self.stream(name)
        while True:
            try:
                events = self._client().get_stream(stream, stream_position=start, limit=chunk, timeout=self._timeout)
            except esdb_errors.NotFound:
                return
            except PersistenceError:
                raise
            except Exception as error:  # noqa: BLE001
                raise translate(error, f"reading {name!r}") from None
            yield from events
            if len(events) < chunk:
                return
            start = events[-1].stream_position + 1
