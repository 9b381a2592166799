"""Is the target a faithful copy of the source? Compared event by event, streaming.

What is compared:
- the count: the source's events up to the copy's snapshot position, and every event of the target;
- `source_digest`: SHA-256 over the source's bodies in the source's order (what an export or a
  replay of the whole archive reports);
- `target_digest`: SHA-256 over the *target's* bodies taken in the *source's* order: each source
  event is paired with the target event of the same event_id, and that target event's body is
  hashed. EventStoreDB stores a batch grouped by stream (eventreplay/store/esdb/store.py), so the
  target's own order may differ from the source's within a batch; pairing by id makes the two
  digests comparable whatever the target's order;
- each pair field by field (type, timestamp, routing key, exchange, received_at, properties, body).

The pairing reads both stores once, side by side: a target event read ahead of its source partner
waits in memory until the source gets there. A copy keeps the two orders within a batch of each
other, so little waits; past MAX_WAITING_BYTES (an event missing early, a target holding other
events) the pairing gives up (a mismatch, said so) and only counts the rest. The copy is verified
when the counts and the digests are equal and no pair differs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from eventreplay.archive_io.stores import closing
from eventreplay.store.base import EventQuery, EventStore, StoredEvent

MAX_WAITING_BYTES = 64 << 20
MAX_PROBLEMS = 10  # problems listed; the rest are counted
FIELDS = ("event_type", "timestamp", "routing_key", "exchange", "received_at", "properties", "body")
PROGRESS_EVERY = 1000


@dataclass
class Verification:
    source_events: int = 0
    target_events: int = 0
    source_digest: str = ""
    target_digest: str | None = None  # None when the pairing gave up
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return (self.problem_count == 0 and self.source_events == self.target_events
                and self.source_digest == self.target_digest)

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def as_record(self) -> dict:
        return {"ok": self.ok, "source_events": self.source_events, "target_events": self.target_events,
                "source_digest": self.source_digest, "target_digest": self.target_digest,
                "problems": self.problem_count}


def differences(a: StoredEvent, b: StoredEvent) -> list[str]:
    return [name for name in FIELDS if getattr(a, name) != getattr(b, name)]


def _weight(event: StoredEvent) -> int:
    return len(event.body) + 512  # the body and a rough allowance for the rest of the object


def verify(source: EventStore, target: EventStore, *, up_to_position: int,
           progress: Callable[[int], None] | None = None) -> Verification:
    result = Verification()
    source_hash, target_hash = hashlib.sha256(), hashlib.sha256()
    waiting: dict[str, StoredEvent] = {}  # target events read ahead of their source partner
    waiting_bytes = 0
    pairing = True
    targets = closing(target.read(EventQuery()))
    target_left = True
    try:
        for event in closing(source.read(EventQuery(up_to_position=up_to_position))):
            result.source_events += 1
            source_hash.update(event.body)
            if progress is not None and result.source_events % PROGRESS_EVERY == 0:
                progress(result.source_events)
            if not pairing:
                continue
            partner = waiting.pop(event.event_id, None)
            if partner is not None:
                waiting_bytes -= _weight(partner)
            while partner is None and target_left:
                candidate = next(targets, None)
                if candidate is None:
                    target_left = False
                    break
                result.target_events += 1
                if candidate.event_id == event.event_id:
                    partner = candidate
                    break
                if candidate.event_id in waiting:
                    result.problem(f"event {candidate.event_id} is stored twice in the target")
                    continue
                waiting[candidate.event_id] = candidate
                waiting_bytes += _weight(candidate)
                if waiting_bytes > MAX_WAITING_BYTES:
                    pairing = False
                    result.problem(
                        f"event {event.event_id} (source position {event.position}) is not near its place in "
                        f"the target: missing, or the target holds other events; stopped pairing after "
                        f"{len(waiting):,} unpaired target events, counting only"
                    )
                    waiting.clear()
                    break
            if not pairing:
                continue
            if partner is None:
                result.problem(f"event {event.event_id} (source position {event.position}) is missing from the target")
                continue
            changed = differences(event, partner)
            if changed:
                result.problem(f"event {event.event_id} differs in the target: {', '.join(changed)}")
            target_hash.update(partner.body)
        # what the target holds beyond the source's events: never paired, or after the last pair
        unpaired, examples = len(waiting), list(waiting)[:3]
        for candidate in targets:
            result.target_events += 1
            unpaired += 1
            if len(examples) < 3:
                examples.append(candidate.event_id)
        if pairing and unpaired:
            result.problem(f"the target holds {unpaired:,} event(s) not in the source (or stored twice there), "
                           f"e.g. {', '.join(examples)}")
    finally:
        targets.close()
    result.source_digest = source_hash.hexdigest()
    result.target_digest = target_hash.hexdigest() if pairing else None
    if progress is not None:
        progress(result.source_events)
    return result
