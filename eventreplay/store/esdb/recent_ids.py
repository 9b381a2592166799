"""The window of recently archived event ids (the module docstring of store.py says what it is
for): event id -> commit position (None until seen in a read), newest last."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from eventreplay.store.esdb.log import LogReader
from eventreplay.store.esdb.mapping import archived_event


class RecentIds:
    def __init__(self, size: int, prefix: str):
        self.size, self._prefix = size, prefix
        self._ids: OrderedDict[str, int | None] = OrderedDict()
        self.seeded = False
        self.complete = False  # it holds every archived event (the archive is small)
        self.hwm = 0  # commit position up to which it has looked

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def position_of(self, event_id: str) -> int | None:
        return self._ids.get(event_id)

    def oldest_position(self) -> int | None:
        return next((p for p in self._ids.values() if p is not None), None)

    def __len__(self) -> int:
        return len(self._ids)

    def remember(self, event_id: str, position: int | None) -> None:
        ids = self._ids
        if event_id in ids:
            if position is not None:
                ids[event_id] = position
            return
        ids[event_id] = position
        if len(ids) > self.size:
            ids.popitem(last=False)
            self.complete = False

    def seed(self, log: LogReader, commit_position: Callable[[], int]) -> None:
        """Once: the newest `size` archived ids, by a backwards read of `$all`. The store then feeds
        it forwards (store.py `_follow`) with what anyone appended after `hwm`."""
        if self.seeded:
            return
        hwm = commit_position()
        newest_first: list[tuple[str, int]] = []
        complete = True
        for recorded in log.scan(backwards=True):
            stored = archived_event(recorded, self._prefix)
            if stored is None:
                continue
            if len(newest_first) >= self.size:
                complete = False
                break
            newest_first.append((stored.event_id, stored.position))
        self._ids.clear()
        for event_id, position in reversed(newest_first):
            self.remember(event_id, position)
        self.complete = complete
        self.hwm = max(hwm, newest_first[0][1] if newest_first else 0)
        self.seeded = True

    def covers(self, position: int) -> bool:
        """Does it hold every archived event after `position` (up to hwm)?"""
        oldest = self.oldest_position()
        return self.complete or (oldest is not None and oldest <= position)
