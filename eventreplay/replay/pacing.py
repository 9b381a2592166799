"""How fast a replay publishes. A pacer says, for each event, at what moment (on the monotonic
clock) it may be sent; the engine waits until then. Schedules are absolute (start + offset), not
"sleep after each send", so that the time spent publishing does not add up into a drift."""
from __future__ import annotations

import time
from datetime import datetime


class Pacer:
    """No pacing: as fast as the broker confirms."""

    def send_at(self, event_timestamp: datetime) -> float | None:
        return None


class RatePacer(Pacer):
    """At most `rate` events per second: event i goes out at start + i / rate."""

    def __init__(self, rate: float, *, clock=time.monotonic):
        self.interval = 1.0 / rate
        self._clock = clock
        self._start: float | None = None
        self._sent = 0

    def send_at(self, event_timestamp: datetime) -> float:
        if self._start is None:
            self._start = self._clock()
        moment = self._start + self._sent * self.interval
        self._sent += 1
        return moment


class SpeedPacer(Pacer):
    """The original spacing, scaled: an event that happened `d` seconds after the first event of
    this run goes out `d / speed` seconds after the run started. Events whose timestamps go back
    (the store's order is arrival order) go out at once rather than waiting."""

    def __init__(self, speed: float, *, clock=time.monotonic):
        self.speed = speed
        self._clock = clock
        self._start: float | None = None
        self._first: datetime | None = None

    def send_at(self, event_timestamp: datetime) -> float:
        if self._start is None:
            self._start, self._first = self._clock(), event_timestamp
            return self._start
        offset = (event_timestamp - self._first).total_seconds() / self.speed
        return self._start + max(offset, 0.0)


def pacer_for(rate: float | None, speed: float | None) -> Pacer:
    if rate is not None:
        return RatePacer(rate)
    if speed is not None:
        return SpeedPacer(speed)
    return Pacer()
