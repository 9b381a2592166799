"""How long the archive keeps events (RETENTION, RETENTION_BY_TYPE), and applying it.

An archive only grows; EventBridge archives have a retention, and so does this one. `RETENTION=90d`
keeps every event 90 days (by its own timestamp); `RETENTION_BY_TYPE=UserLoggedIn=7d,...` keeps
those types a shorter (or longer) time than the rest. Nothing set: events are kept for ever.

Pruning deletes in small transactions (EventStore.prune), so ingest never waits long for the write
lock; the store keeps its counts and indexes exact as it deletes. The consumer prunes at start and
every PRUNE_INTERVAL_S (`Pruner`); `task prune` prunes once.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from eventreplay.store import EventStore, PersistenceError

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s`, `2w`: ValueError with a readable reason otherwise."""
    found = _DURATION.fullmatch(text or "")
    if not found:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit (s, m, h, d, w), e.g. 90d")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a retention must be longer than zero")
    return timedelta(seconds=seconds)


def parse_by_type(text: str) -> dict[str, timedelta]:
    """`UserLoggedIn=7d,ProductViewed=30d` -> {type: duration}."""
    rules: dict[str, timedelta] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, duration = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part.strip()!r}: write EventType=duration, e.g. UserLoggedIn=7d")
        rules[name.strip()] = parse_duration(duration)
    return rules


@dataclass(frozen=True)
class RetentionPolicy:
    keep: timedelta | None = None  # every type not named below; None: for ever
    by_type: dict[str, timedelta] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings) -> "RetentionPolicy":
        return cls(parse_duration(settings.retention) if settings.retention.strip() else None,
                   parse_by_type(settings.retention_by_type))

    @property
    def keeps_everything(self) -> bool:
        return self.keep is None and not self.by_type

    def describe(self) -> str:
        parts = [f"{_words(self.keep)} for every type" if self.keep else "for ever by default"]
        parts += [f"{name}: {_words(keep)}" for name, keep in sorted(self.by_type.items())]
        return "; ".join(parts)

    def cutoffs(self, now: datetime) -> list[tuple[datetime, tuple[str, ...] | None, tuple[str, ...]]]:
        """(delete before, only these types or None = all, but never these types) per rule."""
        named = tuple(sorted(self.by_type))
        rules = [(now - keep, (name,), ()) for name, keep in sorted(self.by_type.items())]
        if self.keep is not None:
            rules.append((now - self.keep, None, named))
        return rules


def _words(keep: timedelta) -> str:
    seconds = keep.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} seconds"


def prune_once(store: EventStore, policy: RetentionPolicy, *, now: datetime | None = None,
               stop: threading.Event | None = None) -> int:
    """Apply the policy once; returns how many events were deleted."""
    now = now or datetime.now(timezone.utc)
    deleted = 0
    for before, only, except_types in policy.cutoffs(now):
        deleted += store.prune(before, event_types=only, except_types=except_types, stop=stop)
    return deleted


class Pruner(threading.Thread):
    """The consumer's periodic prune, in a thread of its own (the store is thread-safe)."""

    def __init__(self, store: EventStore, policy: RetentionPolicy, interval: float):
        super().__init__(name="pruner", daemon=True)
        self.store, self.policy, self.interval = store, policy, interval
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        log.info("retention: keeping events %s; pruning every %.0f s", self.policy.describe(), self.interval)
        while not self._stopping.is_set():
            try:
                deleted = prune_once(self.store, self.policy, stop=self._stopping)
                if deleted:
                    log.info("retention: pruned %d events", deleted)
            except PersistenceError as error:
                log.warning("retention: pruning failed (%s); trying again in %.0f s", error, self.interval)
            self._stopping.wait(self.interval)
