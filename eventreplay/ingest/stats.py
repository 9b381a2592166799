"""Counters of the consumer and the periodic one-line summary it logs."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("eventreplay.ingest")


@dataclass
class IngestStats:
    stored: int = 0  # new events appended
    duplicates: int = 0  # valid events the store had already (redeliveries, publisher resends)
    dead_lettered: int = 0
    replay_skipped: int = 0
    redelivered: int = 0  # deliveries RabbitMQ flagged as redelivered (after a lost connection, say)
    started: float = field(default_factory=time.monotonic)
    _last_report: float = field(default_factory=time.monotonic)
    _stored_at_last_report: int = 0

    @property
    def archived(self) -> int:
        """Valid events handled (new or duplicate)."""
        return self.stored + self.duplicates

    def line(self) -> str:
        return (
            f"stored {self.stored} new events, {self.duplicates} duplicates, "
            f"{self.dead_lettered} dead-lettered, {self.replay_skipped} replays skipped, "
            f"{self.redelivered} redeliveries received"
        )

    def report_if_due(self, every: float) -> None:
        now = time.monotonic()
        if now - self._last_report < every:
            return
        rate = (self.stored - self._stored_at_last_report) / (now - self._last_report)
        self._last_report, self._stored_at_last_report = now, self.stored
        log.info("%s (%.0f events/s over the last %.0f s)", self.line(), rate, every)

    def final(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.line()} in {elapsed:.1f} s"
