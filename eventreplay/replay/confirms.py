"""What the broker has confirmed of a replay: a pure bookkeeper, no I/O.

The publisher tells it what it sent (`sent`) and what the broker answered (`acked`, `nacked`,
`returned`), in whatever order the answers come; it keeps the *contiguous* confirmed prefix, the
one thing a resume may trust: the first `confirmed` events of the replay all reached the broker,
the last of them at `last_position`, and `digest` is SHA-256 over their bodies in order.

- Acks may come out of order and with `multiple`; an event counts only once every event before it
  is confirmed too.
- A nack, or a return (RabbitMQ returns an unroutable mandatory message, then acks it), leaves a
  hole: `failure` says why, and nothing after the hole ever counts as confirmed.
- `connection_lost()` forgets what is in flight (a new channel numbers its messages from 1 again);
  the run sends those events again, after `last_position`.
"""
from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class _InFlight:
    position: int
    message_id: str
    body: bytes
    timestamp: datetime
    sent_at: float
    settled: bool = False  # acked, maybe ahead of an unconfirmed earlier message
    failed: bool = False  # nacked or returned: a hole


class ConfirmTracker:
    def __init__(self, *, confirmed: int = 0, first_position: int | None = None,
                 last_position: int | None = None, last_timestamp: datetime | None = None,
                 digest=None, latency_sample_every: int = 8):
        self.confirmed = confirmed
        self.first_position = first_position
        self.last_position = last_position
        self.last_timestamp = last_timestamp
        self._hasher = digest if digest is not None else hashlib.sha256()
        self._in_flight: collections.OrderedDict[int, _InFlight] = collections.OrderedDict()
        self._next_tag = 1
        self.failure: str | None = None
        self._sample_every = latency_sample_every
        self._latencies: list[float] = []

    # the publisher's side --------------------------------------------------------------------
    def sent(self, *, position: int, message_id: str, body: bytes, timestamp: datetime, now: float) -> int:
        """Record a message just published on the channel; returns its delivery tag."""
        tag = self._next_tag
        self._next_tag += 1
        self._in_flight[tag] = _InFlight(position, message_id, body, timestamp, now)
        return tag

    def acked(self, tag: int, *, multiple: bool = False, now: float) -> None:
        for entry in self._answered(tag, multiple):
            entry.settled = True
        self._advance(now)

    def nacked(self, tag: int, *, multiple: bool = False) -> None:
        for entry in self._answered(tag, multiple):
            entry.failed = True
        self.failure = self.failure or "the broker refused a message (basic.nack)"

    def returned(self, message_id: str | None, reason: str) -> None:
        """A basic.return: the oldest message in flight with that id came back unrouted."""
        self.failure = self.failure or reason
        for entry in self._in_flight.values():
            if not entry.failed and entry.message_id == message_id:
                entry.failed = True
                return
        # Not ours to identify: no later ack can be trusted to mean "delivered".
        for entry in self._in_flight.values():
            entry.failed = True

    def connection_lost(self) -> int:
        """The channel is gone: forget what was in flight (to be sent again). Returns how many."""
        forgotten = len(self._in_flight)
        self._in_flight.clear()
        self._next_tag = 1
        return forgotten

    # what the run reads ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Sent and not yet part of the confirmed prefix (unconfirmed, or confirmed after a gap)."""
        return len(self._in_flight)

    @property
    def awaiting(self) -> int:
        """Sent and not answered by the broker at all yet (neither acked nor refused)."""
        return sum(1 for entry in self._in_flight.values() if not entry.settled and not entry.failed)

    @property
    def digest(self) -> str:
        return self._hasher.hexdigest()

    def take_latencies(self) -> list[float]:
        """Publish-to-confirm times of a sample of the messages confirmed since the last call."""
        taken, self._latencies = self._latencies, []
        return taken

    # internals ---------------------------------------------------------------------------------
    def _answered(self, tag: int, multiple: bool) -> list[_InFlight]:
        if not multiple:
            entry = self._in_flight.get(tag)
            return [entry] if entry is not None else []
        out = []
        for each_tag, entry in self._in_flight.items():
            if each_tag > tag:
                break
            out.append(entry)
        return out

    def _advance(self, now: float) -> None:
        in_flight = self._in_flight
        while in_flight:
            tag, entry = next(iter(in_flight.items()))
            if not entry.settled or entry.failed:
                return
            del in_flight[tag]
            self._hasher.update(entry.body)
            if self.first_position is None:
                self.first_position = entry.position
            self.last_position = entry.position
            self.last_timestamp = entry.timestamp
            self.confirmed += 1
            if self.confirmed % self._sample_every == 0:
                self._latencies.append(now - entry.sent_at)
