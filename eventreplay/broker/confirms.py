"""What the broker has confirmed of what we published: a pure bookkeeper, no I/O.

The publisher tells it what it sent (`sent`, with any item of the caller's: an event, a sequence
number) and what the broker answered (`acked`, `nacked`, `returned`), in whatever order the answers
come. It confirms items in publish order only, as a *contiguous* prefix: an item counts once every
item before it is confirmed too, which is what a caller that resumes after "the last confirmed"
needs. Subclasses or an `on_confirmed` callback see each confirmed item.

- Acks may come out of order and with `multiple`.
- A nack, or a return (RabbitMQ returns an unroutable mandatory message, then acks it), leaves a
  hole: `failure` says why, and nothing after the hole is ever confirmed.
- `connection_lost()` hands back what was in flight (to be sent again): a new channel numbers its
  messages from 1 again.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(slots=True)
class _InFlight:
    item: Any
    message_id: str | None
    sent_at: float
    settled: bool = False  # acked, maybe ahead of an unconfirmed earlier message
    failed: bool = False  # nacked or returned: a hole


class ConfirmTracker:
    def __init__(self, *, on_confirmed: Callable[[Any], None] | None = None, latency_sample_every: int = 8):
        self.confirmed = 0
        self.failure: str | None = None
        self.on_confirmed = on_confirmed
        self._in_flight: collections.OrderedDict[int, _InFlight] = collections.OrderedDict()
        self._next_tag = 1
        self._sample_every = latency_sample_every
        self._latencies: list[float] = []
        # confirmed by this tracker (`confirmed` may start at an earlier run's count): the sample is
        # its 1st, then every n-th, so that a short replay is measured too
        self._confirmed_here = 0

    # the publisher's side --------------------------------------------------------------------
    def sent(self, item: Any, *, message_id: str | None, now: float) -> int:
        """Record a message just published on the channel; returns its delivery tag."""
        tag = self._next_tag
        self._next_tag += 1
        self._in_flight[tag] = _InFlight(item, message_id, now)
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
            if not entry.failed and message_id is not None and entry.message_id == message_id:
                entry.failed = True
                return
        # Not ours to identify: no later ack can be trusted to mean "delivered".
        for entry in self._in_flight.values():
            entry.failed = True

    def connection_lost(self) -> list[Any]:
        """The channel is gone: forget what was in flight and return those items, in order."""
        forgotten = [entry.item for entry in self._in_flight.values()]
        self._in_flight.clear()
        self._next_tag = 1
        return forgotten

    # what the caller reads ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Sent and not yet confirmed (unconfirmed, or confirmed after a gap)."""
        return len(self._in_flight)

    @property
    def awaiting(self) -> int:
        """Sent and not answered by the broker at all yet (neither acked nor refused)."""
        return sum(1 for entry in self._in_flight.values() if not entry.settled and not entry.failed)

    def take_latencies(self) -> list[float]:
        """Publish-to-confirm times of a sample of the messages confirmed since the last call."""
        taken, self._latencies = self._latencies, []
        return taken

    # internals ---------------------------------------------------------------------------------
    def _confirm(self, item: Any) -> None:
        """One more item of the contiguous prefix (subclasses add their own bookkeeping)."""
        if self.on_confirmed is not None:
            self.on_confirmed(item)

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
            self.confirmed += 1
            self._confirm(entry.item)
            if self._confirmed_here % self._sample_every == 0:
                self._latencies.append(now - entry.sent_at)
            self._confirmed_here += 1
