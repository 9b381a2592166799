"""What a replay may trust of the broker's confirms: the ConfirmTracker's contiguous confirmed
prefix (eventreplay/broker/confirms.py), in terms of the replayed events. Pure, no I/O.

The first `confirmed` events of the replay all reached the broker, the last of them at
`last_position`, and `digest` is SHA-256 over their bodies in order: a resume continues after
`last_position`, and (rebuilding the hash over the events confirmed before) ends with the digest of
a replay that never stopped.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from eventreplay.broker.confirms import ConfirmTracker
from eventreplay.store.base import StoredEvent


class ReplayConfirms(ConfirmTracker):
    def __init__(self, *, confirmed: int = 0, first_position: int | None = None,
                 last_position: int | None = None, last_timestamp: datetime | None = None,
                 digest=None, latency_sample_every: int = 8):
        super().__init__(latency_sample_every=latency_sample_every)
        self.confirmed = confirmed
        self.first_position = first_position
        self.last_position = last_position
        self.last_timestamp = last_timestamp
        self._hasher = digest if digest is not None else hashlib.sha256()

    @property
    def digest(self) -> str:
        return self._hasher.hexdigest()

    def _confirm(self, event: StoredEvent) -> None:
        self._hasher.update(event.body)
        if self.first_position is None:
            self.first_position = event.position
        self.last_position = event.position
        self.last_timestamp = event.timestamp
