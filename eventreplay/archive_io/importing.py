"""Import: the lines of an export appended to a store in batches, streaming (memory holds one batch).

Deduplication is the store's own (EventStore.append is idempotent by event_id): what a batch adds
is what `append` says was new, the rest was already present (or repeated in the file). Importing a
file twice adds nothing the second time. (EventStoreDB recognises ids among its last 100,000
archived events only: eventreplay/store/esdb/store.py.)

A bad line (not JSON, no event of the format, an event the store refuses for good) is reported with
its line number and skipped; with `strict`, the first one stops the import, after the lines before
it are appended. Blank lines are ignored. `digest`: SHA-256 over the imported bodies in file order,
which for the file of an export is the export's digest.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from eventreplay.archive_io.files import MAX_LINE, TOO_LONG
from eventreplay.archive_io.jsonl import BadLine, decode_line
from eventreplay.archive_io.stores import GIVE_UP_S, append_retrying
from eventreplay.retrying import RetryPolicy
from eventreplay.store.base import EventRejected, EventStore, NewEvent

BATCH_SIZE = 2000


@dataclass
class ImportReport:
    lines: int = 0  # lines read, blank ones included
    events: int = 0  # events handed to the store (new + present)
    new: int = 0
    present: int = 0  # already in the store, or repeated in the file
    bad: int = 0
    stopped_at: int | None = None  # strict: the bad line that stopped the import
    digest: str = hashlib.sha256().hexdigest()  # SHA-256 over the imported bodies, in file order
    seconds: float = 0.0
    _hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256, repr=False)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _Stop(Exception):
    pass


def import_lines(store: EventStore, lines: Iterable[bytes | None], *, batch_size: int = BATCH_SIZE,
                 strict: bool = False, on_bad: Callable[[int, str], None],
                 progress: Callable[[int], None] | None = None,
                 policy: RetryPolicy | None = None) -> ImportReport:
    """Append the events of `lines` (numbered from 1). `on_bad(line_number, reason)` for each bad
    line; `progress(events)` after each batch."""
    report = ImportReport()
    policy = policy or RetryPolicy(give_up_after=GIVE_UP_S)
    started = time.monotonic()
    batch: list[tuple[int, NewEvent]] = []

    def bad(number: int, reason: str) -> None:
        report.bad += 1
        on_bad(number, reason)
        if strict:
            report.stopped_at = number
            raise _Stop

    def flush() -> None:
        _append(store, batch, report, policy, bad, strict)
        batch.clear()
        if progress is not None:
            progress(report.events)

    try:
        for number, line in enumerate(lines, 1):
            report.lines = number
            if line is TOO_LONG:
                if strict:
                    flush()
                bad(number, f"longer than {MAX_LINE:,} bytes")
                continue
            if not line.strip():
                continue
            try:
                batch.append((number, decode_line(line)))
            except BadLine as error:
                if strict:
                    flush()  # the lines before it are imported
                bad(number, str(error))
                continue
            if len(batch) >= batch_size:
                flush()
        flush()
    except _Stop:
        pass
    report.digest = report._hasher.hexdigest()
    report.seconds = time.monotonic() - started
    return report


def _append(store: EventStore, batch: list[tuple[int, NewEvent]], report: ImportReport, policy: RetryPolicy,
            bad: Callable[[int, str], None], strict: bool) -> None:
    """Append the batch. Events the store refuses for good (a refused batch stores nothing) are bad
    lines: the rest is appended without them, or, `strict`, the events before the first of them."""
    while batch:
        try:
            new = append_retrying(store, [event for _, event in batch], policy)
        except EventRejected as refused:
            at = [i for i, (_, event) in enumerate(batch) if event.event_id in refused.reasons]
            if not at:  # the store named no event of ours: nothing to drop
                raise
            if strict:
                _append(store, batch[:at[0]], report, policy, bad, strict)
            for i in at:
                number, event = batch[i]
                bad(number, f"refused by the store: {refused.reasons[event.event_id]}")
            dropped = set(at)
            batch = [item for i, item in enumerate(batch) if i not in dropped]
            continue
        report.new += new
        report.present += len(batch) - new
        report.events += len(batch)
        for _, event in batch:
            report._hasher.update(event.body)
        return
