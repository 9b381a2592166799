"""The deliveries received since the last store, and when they must be stored.

A batch is stored when it holds `size` deliveries or its first delivery has waited `max_latency`
seconds, whichever comes first. All of it is acknowledged at once (multiple-ack up to `last_tag`)
after the store, so the batch must keep the order of delivery tags.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from eventreplay.ingest.triage import REPLAYED, DeadLetter
from eventreplay.store import NewEvent


@dataclass
class Batch:
    events: list[NewEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    replayed: int = 0
    deliveries: int = 0
    last_tag: int = 0
    opened_at: float = 0.0  # monotonic time of the first delivery

    def add(self, delivery_tag: int, verdict) -> None:
        if not self.deliveries:
            self.opened_at = time.monotonic()
        self.deliveries += 1
        self.last_tag = delivery_tag
        if verdict is REPLAYED:
            self.replayed += 1
        elif isinstance(verdict, DeadLetter):
            self.dead_letters.append(verdict)
        else:
            self.events.append(verdict)

    def __len__(self) -> int:
        return self.deliveries

    def age(self) -> float:
        return time.monotonic() - self.opened_at if self.deliveries else 0.0
