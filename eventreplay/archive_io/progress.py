"""What the commands tell the operator on stderr while they work: a rich progress bar when stderr
is a terminal (nothing otherwise: logs and pipes get the summary lines only), and lines printed
without breaking the bar."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from eventreplay.store.base import EventQuery, EventStore


class Reporter:
    """Progress of one step. `update(done, events)`: `done` counts in the units of the bar's total
    (events, or a file's bytes), `events` the events handled so far."""

    def __init__(self, bar=None, task=None):
        self._bar, self._task = bar, task
        self._started = time.monotonic()

    def update(self, done: float, events: int) -> None:
        if self._bar is None:
            return
        elapsed = time.monotonic() - self._started
        rate = f"{events / elapsed:,.0f} events/s" if elapsed > 0.5 else ""
        self._bar.update(self._task, completed=done, events=f"{events:,} events", rate=rate)

    def say(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            say(text)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def progress(label: str, *, total: float | None, enabled: bool | None = None) -> Iterator[Reporter]:
    """A bar labelled `label` towards `total` (None: no known end, a pulse) while the body runs;
    shown only when `enabled`, by default when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield Reporter()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[events]}"),
        TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=Console(stderr=True), transient=False,
    ) as bar:
        task = bar.add_task(label, total=total, events="", rate="")
        yield Reporter(bar, task)


def known_total(store: EventStore, query: EventQuery) -> int | None:
    """How many events the query reads, when the store can say so cheaply (SQLite counts with its
    indexes); None for EventStoreDB, where counting is a second scan of the whole log."""
    from eventreplay.store.sqlite import SQLiteEventStore

    if isinstance(store, SQLiteEventStore) and not query.match:
        return store.count(query)
    return None
