"""The durable id index: one private stream per archived event id, `{prefix}eventreplay-id-{uuid}`.

Why a stream per id (and not link events bucketed by id prefix): EventStoreDB finds an event by
stream name and revision in O(1) (its index is a hash of the stream name), and nothing else; a
bucket stream would have to be read through to find one id. And a stream of its own gives what
EventStoreDB otherwise lacks, a unique constraint: an append with expected version `no_stream` to
`id-{uuid}` succeeds for exactly one writer. So an append first *claims* the ids of its new events
(one `IdClaimed` event each, `no_stream`), appends only the events it claimed, then adds a link event
(`$>` to `{revision}@{routing stream}`) to each id stream. All claims of a batch travel in one
BatchAppend call (multi_append.py), and so do all links: two round trips per batch, whatever its size.

A claim that fails means the id is known: its stream ends with a link (stored; unless the retention
deleted that event, which may then be stored again, as in SQLite) or with a bare claim: another
writer is storing the event right now (the append answers StoreUnavailable, to be retried, while the
claim is younger than appends.IN_FLIGHT_S), or a writer failed or crashed between claiming and
linking (then the recent-id window, or a short search after the claim's position, says whether the
event got stored; if not, it is claimed over that claim, again with an expected version). A failed
append's own claims (this instance's) are claimed over at once.

`get(event_id)` reads the id stream's last event and the one event it links to: two reads, never
`$all` (but for a bare claim, looked for right after the claim).
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Callable, Iterable

from esdbclient import EventStoreDBClient, StreamState
from esdbclient import NewEvent as ESDBNewEvent
from esdbclient import exceptions as esdb_errors
from esdbclient.events import RecordedEvent

from eventreplay.store.base import PersistenceError
from eventreplay.store.esdb.links import LINK_TYPE, Linked, link_event
from eventreplay.store.esdb.mapping import PRIVATE_TYPE_PREFIX, private_stream, translate
from eventreplay.store.esdb.multi_append import Conflict, Write, append_many

CLAIM_TYPE = PRIVATE_TYPE_PREFIX + "IdClaimed"


class IdIndex:
    def __init__(self, client: Callable[[], EventStoreDBClient], prefix: str, timeout: float):
        self._client, self._prefix, self._timeout = client, prefix, timeout

    def stream(self, event_id: str) -> str:
        return private_stream(self._prefix, f"id-{event_id}")

    @staticmethod
    def _claim_event(stream: str) -> ESDBNewEvent:
        return ESDBNewEvent(type=CLAIM_TYPE, data=json.dumps({"stream": stream}).encode(), id=uuid.uuid4())

    def claim(self, wanted: Iterable[tuple[str, str, int | None]]) -> dict[str, bool]:
        """Claim (event_id, routing stream, expected revision or None for a new id): id -> claimed."""
        wanted = list(wanted)
        writes = [Write(self.stream(event_id), StreamState.NO_STREAM if expected is None else expected,
                        [self._claim_event(stream)]) for event_id, stream, expected in wanted]
        try:
            results = append_many(self._client(), writes, self._timeout)
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001 - everything esdbclient/grpc raises
            raise translate(error, f"claiming {len(writes)} event ids") from None
        claimed = {}
        for (event_id, _, _), result in zip(wanted, results):
            if isinstance(result, Conflict):
                claimed[event_id] = False
            elif isinstance(result, Exception):
                raise translate(result, f"claiming event id {event_id}")
            else:
                claimed[event_id] = True
        return claimed

    def link_writes(self, targets: Iterable[tuple[str, Linked]]) -> list[Write]:
        return [Write(self.stream(event_id), StreamState.ANY, [link_event(target)]) for event_id, target in targets]

    def last(self, event_id: str) -> RecordedEvent | None:
        """The id stream's last event (a link or a claim), unresolved; None when the id is unknown."""
        try:
            events = self._client().get_stream(self.stream(event_id), backwards=True, limit=1, timeout=self._timeout)
        except esdb_errors.NotFound:
            return None
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"reading the id index of {event_id}") from None
        return events[0] if events else None

    def target(self, link: RecordedEvent) -> RecordedEvent | None:
        """The event a link points to, or None when it is gone (truncated by the retention)."""
        revision, _, stream = link.data.decode().partition("@")
        try:
            events = self._client().get_stream(stream, stream_position=int(revision), limit=1, timeout=self._timeout)
        except esdb_errors.NotFound:
            return None
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"reading {revision}@{stream}") from None
        return events[0] if events and events[0].stream_position == int(revision) else None

    def after_claim(self, claim: RecordedEvent, event_id: str, *, limit: int = 200) -> RecordedEvent | None:
        """The event a bare claim was made for, if it got stored: it is in the claimed stream, soon
        after the claim (a writer appends right after claiming)."""
        stream = json.loads(claim.data)["stream"]
        try:
            response = self._client().read_all(
                commit_position=claim.commit_position, limit=limit, filter_include=(re.escape(stream),),
                filter_exclude=(), filter_by_stream_name=True, timeout=self._timeout)
            try:
                for recorded in response:
                    if str(recorded.id) == event_id:
                        return recorded
            finally:
                response.stop()
        except PersistenceError:
            raise
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"looking for {event_id} after its claim") from None
        return None

    @staticmethod
    def is_link(recorded: RecordedEvent) -> bool:
        return recorded.type == LINK_TYPE
