"""Export: the events a replay with the same filters would send, in the same order, as JSON Lines.

The filters are a ReplaySpec's (eventreplay/replay/spec.py), checked by its rules and turned into an
EventQuery by its `query()`; like a replay, the export fixes its content at the start
(`up_to_position` = the store's last position then), so events stored meanwhile wait for the next
export. `digest` is SHA-256 over the exported bodies in order: the `digest` a replay job of the same
filters reports once completed.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

from eventreplay.archive_io.jsonl import encode_line
from eventreplay.archive_io.stores import closing
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store.base import EventQuery, EventStore

PROGRESS_EVERY = 1000  # events between two progress callbacks


@dataclass
class ExportReport:
    events: int = 0
    line_bytes: int = 0  # the JSON Lines, before any compression
    body_bytes: int = 0
    digest: str = hashlib.sha256().hexdigest()
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def export_query(store: EventStore, spec: ReplaySpec) -> EventQuery:
    """The query of a replay of `spec` started now: its filters, up to the store's last event."""
    return spec.query(up_to_position=store.last_position())


def export_events(store: EventStore, query: EventQuery, out: BinaryIO, *,
                  progress: Callable[[int], None] | None = None) -> ExportReport:
    """Write every event of the query as a line to `out`; `progress(events)` now and then."""
    report = ExportReport()
    hasher = hashlib.sha256()
    started = time.monotonic()
    write = out.write
    for event in closing(store.read(query)):
        line = encode_line(event)
        write(line)
        hasher.update(event.body)
        report.events += 1
        report.line_bytes += len(line)
        report.body_bytes += len(event.body)
        if progress is not None and report.events % PROGRESS_EVERY == 0:
            progress(report.events)
    report.digest = hasher.hexdigest()
    report.seconds = time.monotonic() - started
    if progress is not None:
        progress(report.events)
    return report

