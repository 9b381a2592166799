"""Reading EventStoreDB's `$all` in chunks: one short gRPC call per chunk, so memory stays flat and
no call lives long enough to hit a deadline while a slow consumer (a replay publishing) drains the
iterator."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from esdbclient import EventStoreDBClient
from esdbclient.events import RecordedEvent

from eventreplay.store.base import PersistenceError
from eventreplay.store.esdb.mapping import server_filters, translate


class LogReader:
    def __init__(self, client: Callable[[], EventStoreDBClient], *, prefix: str, timeout: float, chunk: int):
        self._client, self._prefix, self._timeout, self.chunk_size = client, prefix, timeout, chunk

    def chunk(self, *, position: int | None, backwards: bool, filters: dict[str, Any],
              limit: int) -> list[RecordedEvent]:
        try:
            response = self._client().read_all(
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

    def scan(self, *, after: int | None = None, before: int | None = None, backwards: bool = False,
             event_types: tuple[str, ...] | None = None, until: int | None = None) -> Iterator[RecordedEvent]:
        """Raw recorded events matching the server-side filter, forwards from after `after`
        (exclusive; up to `until` inclusive) or backwards from before `before` (exclusive), chunk by
        chunk."""
        filters = server_filters(self._prefix, event_types)
        position = before if backwards else (after if after is not None and after >= 0 else None)
        while True:
            chunk = self.chunk(position=position, backwards=backwards, filters=filters, limit=self.chunk_size)
            for recorded in chunk:
                at = recorded.commit_position
                # A forwards read from a position includes the event there; skip what we had.
                if position is not None and (at >= position if backwards else at <= position):
                    continue
                if until is not None and not backwards and at > until:
                    return
                yield recorded
            if len(chunk) < self.chunk_size:
                return
            position = chunk[-1].commit_position
