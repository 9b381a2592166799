"""Keeping the archive in shape: what it holds (`archive`), indexing the events stored before a field
was indexed (`reindex`), and applying the retention now (`prune`).

    python -m eventreplay.cli archive
    python -m eventreplay.cli reindex            # INDEXED_FIELDS from the settings (.env)
    python -m eventreplay.cli prune              # RETENTION / RETENTION_BY_TYPE from the settings
    python -m eventreplay.cli prune --older-than 30d --event-type UserLoggedIn --dry-run

Both reindex and prune work in short transactions while the consumer keeps storing, and keep their
progress in the store: interrupted (Ctrl-C, SIGTERM, a kill), the same command continues.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import List, Optional

import typer

from eventreplay.archive_io.cli import _failures, _settings
from eventreplay.archive_io.progress import progress, say
from eventreplay.archive_io.stores import display_url, open_checked
from eventreplay.retention import RetentionPolicy, parse_duration
from eventreplay.store import EventQuery

STORE_HELP = "Store URL (sqlite:///PATH or esdb://HOST:PORT?Tls=false); default: EVENT_STORE_URL."
CONTINUE = "interrupted; the same command continues where this one stopped"


def archive(store_url: Optional[str] = typer.Option(None, "--store", help=STORE_HELP)) -> None:
    """What the archive holds: events, oldest and newest, what retention pruned, the field indexes."""
    settings = _settings()
    url = store_url or settings.event_store_url
    with _failures():
        with open_checked(url, must_exist=True) as store:
            span, indexes = store.span(), store.field_indexes()
    print(f"store:         {display_url(url)}")
    print(f"events:        {span.events:,}")
    print(f"oldest event:  {_when(span.oldest)}")
    print(f"newest event:  {_when(span.newest)}")
    print(f"pruned before: {_when(span.pruned_before)}")
    print(f"retention:     {RetentionPolicy.from_settings(settings).describe()} (this machine's settings)")
    for index in indexes:
        state = "ready" if index.ready else f"reindex needed (positions {index.backfilled_to:,} of {index.since_position:,})"
        print(f"index:         {index.field}: {state}")
    if not indexes:
        print("index:         none (every payload match reads the whole range)")


def reindex(
    store_url: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    fields: Optional[str] = typer.Option(
        None, help="Comma-separated payload fields to index; default: INDEXED_FIELDS."),
) -> None:
    """Index the events stored before their fields were indexed (resumable, ingest keeps running)."""
    settings = _settings()
    wanted = [name.strip() for name in (fields if fields is not None else settings.indexed_fields).split(",")
              if name.strip()]
    stop = threading.Event()
    with _failures(interrupted=CONTINUE):
        with open_checked(store_url or settings.event_store_url, must_exist=True) as store:
            store.index_fields(wanted)
            started = time.monotonic()
            try:
                with progress("reindexing", total=None) as bar:
                    done = store.reindex(progress=lambda done, total: _bar_to(bar, done, total), stop=stop)
            except KeyboardInterrupt:
                stop.set()
                raise
            ready = [index.field for index in store.field_indexes() if index.ready]
    seconds = time.monotonic() - started
    say(f"reindexed {done:,} positions in {seconds:.1f} s; ready: {', '.join(ready) or 'none'}")


def prune(
    store_url: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    older_than: Optional[str] = typer.Option(
        None, help="Delete events older than this (90d, 12h, ...) instead of the RETENTION settings."),
    event_type: Optional[List[str]] = typer.Option(
        None, "--event-type", "-t", help="With --older-than: only this type (repeat for several)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
) -> None:
    """Delete the events the retention no longer keeps, in short transactions (ingest keeps running)."""
    settings = _settings()
    policy = _policy(settings, older_than, event_type)
    if policy.keeps_everything:
        say("nothing to prune: no retention is set (RETENTION, RETENTION_BY_TYPE) and no --older-than")
        return
    now = datetime.now(timezone.utc)
    stop = threading.Event()
    with _failures(interrupted=CONTINUE):
        with open_checked(store_url or settings.event_store_url, must_exist=True) as store:
            started, deleted = time.monotonic(), 0
            for before, only, except_types in policy.cutoffs(now):
                what = f"{', '.join(only) if only else 'every type'}" + (
                    f" except {', '.join(except_types)}" if except_types else "")
                if dry_run:
                    types = only or ([t for t in store.counts_by_type() if t not in except_types]
                                     if except_types else None)
                    count = store.count(EventQuery(until=before, event_types=tuple(types) if types else None))
                    say(f"would delete {count:,} events of {what} older than {before.isoformat(timespec='seconds')}")
                    continue
                try:
                    gone = store.prune(before, event_types=only, except_types=except_types, stop=stop)
                except KeyboardInterrupt:
                    stop.set()
                    raise
                deleted += gone
                say(f"deleted {gone:,} events of {what} older than {before.isoformat(timespec='seconds')}")
    if not dry_run:
        say(f"pruned {deleted:,} events in {time.monotonic() - started:.1f} s")


def _policy(settings, older_than: str | None, event_types: list[str] | None) -> RetentionPolicy:
    if older_than is None:
        if event_types:
            raise typer.BadParameter("give --older-than with --event-type", param_hint="--event-type")
        return RetentionPolicy.from_settings(settings)
    try:
        keep = parse_duration(older_than)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from None
    if event_types:
        return RetentionPolicy(None, {name: keep for name in event_types})
    return RetentionPolicy(keep)


def _bar_to(bar, done: int, total: int) -> None:
    if bar._bar is not None:
        bar._bar.update(bar._task, total=total)
    bar.update(done, done)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
