"""Export, import and copy the archive.

    python -m eventreplay.archive_io export archive.jsonl.gz --event-type OrderPlaced --since 2024-05-01
    python -m eventreplay.archive_io import archive.jsonl.gz
    python -m eventreplay.archive_io copy --from sqlite:///.run/events.db --to 'esdb://localhost:2113?Tls=false'

The store is EVENT_STORE_URL (settings, .env) unless --store names another. A progress bar shows on
stderr when it is a terminal; each command ends with a summary line on stderr (stdout carries only
an export written to `-`). Exit codes: 0 done; 1 an error (said in one line), or bad lines skipped
by an import; 2 a wrong option; 3 a copy whose verification found a difference; 130 interrupted.
"""
from __future__ import annotations

import errno
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from pydantic import ValidationError

from eventreplay.archive_io.checkpoint import CheckpointError, default_path, locked
from eventreplay.archive_io.copy import BATCH_SIZE as COPY_BATCH, CopyError, copy_events, prepare
from eventreplay.archive_io.export import export_events, export_query
from eventreplay.archive_io.files import ArchiveFileError, open_input, open_output, wants_gzip
from eventreplay.archive_io.importing import BATCH_SIZE as IMPORT_BATCH, import_lines
from eventreplay.archive_io.progress import known_total, progress, say
from eventreplay.archive_io.stores import display_url, open_checked, same_store
from eventreplay.archive_io.verify import verify
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store.base import EventQuery, PersistenceError
from eventreplay.store.query import parse_match
from eventreplay.store.urls import parse_store_url

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=__doc__.split("\n\n")[0])

EXIT_ERROR, EXIT_MISMATCH, EXIT_INTERRUPTED = 1, 3, 130
BAD_LINES_SHOWN = 20
OPTION_OF = {"event_types": "--event-type", "since": "--since", "until": "--until", "match": "--match",
             "limit": "--limit"}

STORE_HELP = "Store URL (sqlite:///PATH or esdb://HOST:PORT?Tls=false); default: EVENT_STORE_URL."


@app.callback()
def _setup() -> None:
    from eventreplay.logs import configure_logging

    configure_logging("WARNING")  # library warnings only; the commands speak for themselves


@app.command()
def export(
    output: str = typer.Argument("-", help="File to write (a name ending in .gz is gzipped); - = stdout."),
    store_url: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    event_type: Optional[List[str]] = typer.Option(
        None, "--event-type", "-t", help="Only this event type (repeat for several); none = every type."),
    since: Optional[str] = typer.Option(None, help="Events with timestamp >= since (ISO 8601; naive = UTC)."),
    until: Optional[str] = typer.Option(None, help="Events with timestamp < until (ISO 8601; naive = UTC)."),
    match: Optional[str] = typer.Option(
        None, help='Equality on top-level payload fields, as JSON: \'{"order_id": "o-1"}\'.'),
    limit: Optional[int] = typer.Option(None, help="At most this many events."),
    compress: Optional[bool] = typer.Option(None, "--gzip/--no-gzip", help="Compress; default: by the name (.gz)."),
) -> None:
    """Write the events a replay with these filters would send, in its order, as JSON Lines."""
    spec = _replay_filters(event_type, since, until, match, limit)
    with _failures():
        with open_checked(store_url or _settings().event_store_url, must_exist=True) as store:
            query = export_query(store, spec)
            total = known_total(store, query)
            with open_output(output, compress=wants_gzip(output, compress)) as out:
                with progress("exporting", total=total) as bar:
                    report = export_events(store, query, out.stream, progress=lambda n: bar.update(n, n))
    size = f"{report.line_bytes:,} bytes of JSON Lines"
    if out.written is not None and out.written != report.line_bytes:
        size += f", {out.written:,} written (gzip)"
    say(f"exported {report.events:,} events to {out.name} ({size}) in {report.seconds:.1f} s "
        f"({report.rate:,.0f} events/s); sha256 of the bodies in order: {report.digest}")


@app.command("import")
def import_(
    input_path: str = typer.Argument(..., metavar="FILE", help="JSON Lines of an export (gzip detected); - = stdin."),
    store_url: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    batch_size: int = typer.Option(IMPORT_BATCH, min=1, max=10_000, help="Events appended per transaction."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad line (default: report it, skip it)."),
) -> None:
    """Append the events of an export to the store; events already there are skipped (by event_id)."""
    url = store_url or _settings().event_store_url
    with _failures():
        with open_input(input_path) as source, open_checked(url) as store:
            with progress("importing", total=source.size) as bar:
                report = import_lines(
                    store, source.lines, batch_size=batch_size, strict=strict,
                    on_bad=_BadLines(bar, source.name, strict),
                    progress=lambda events: bar.update(source.tell(), events),
                )
    skipped = " skipped" if report.stopped_at is None else ""
    say(f"imported {report.events:,} events from {source.name} into {display_url(url)}: {report.new:,} new, "
        f"{report.present:,} already present; {report.bad:,} bad lines{skipped} in {report.seconds:.1f} s "
        f"({report.rate:,.0f} events/s); sha256 of the bodies in file order: {report.digest}")
    if report.stopped_at is not None:
        say(f"stopped at line {report.stopped_at:,} (--strict); the events of the lines before it are imported")
    if report.bad:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def copy(
    source_url: str = typer.Option(..., "--from", help="Store to copy from (its URL)."),
    target_url: str = typer.Option(..., "--to", help="Store to copy into (empty at the first run)."),
    batch_size: int = typer.Option(COPY_BATCH, min=1, max=10_000, help="Events appended per batch (and checkpoint)."),
    state: Optional[Path] = typer.Option(
        None, help="The checkpoint file; default: RUN_DIR/copies/<hash of both URLs>.json."),
    restart: bool = typer.Option(False, "--restart", help="Forget the checkpoint and start from the first event."),
    check: bool = typer.Option(True, "--verify/--no-verify", help="Compare source and target at the end."),
) -> None:
    """Copy every event of one store into another: resumable (run it again after a kill), verified."""
    with _failures(interrupted="interrupted; the same command continues from the last checkpoint"):
        if same_store(parse_store_url(source_url), parse_store_url(target_url)):
            raise CopyError("--from and --to name the same store")
        state_path = state or default_path(_settings().run_dir, source_url, target_url)
        with locked(state_path), open_checked(source_url, must_exist=True) as source, \
                open_checked(target_url) as target:
            checkpoint = prepare(source_url, target_url, target, state_path, restart=restart)
            up_to = source.last_position()
            if checkpoint.last_position is not None:
                say(f"continuing after source position {checkpoint.last_position} ({checkpoint.copied:,} events "
                    f"copied by earlier runs; checkpoint {state_path})")
            total = known_total(source, EventQuery(after_position=checkpoint.last_position, up_to_position=up_to))
            with progress("copying", total=total) as bar:
                run = copy_events(source, target, checkpoint, up_to_position=up_to, batch_size=batch_size,
                                  progress=lambda n: bar.update(n, n), say=bar.say)
            say(f"copied {run.copied:,} events from {display_url(source_url)} to {display_url(target_url)} "
                f"({run.new:,} new in the target, {run.copied - run.new:,} already there) in {run.seconds:.1f} s "
                f"({run.rate:,.0f} events/s); {checkpoint.copied:,} in all, up to source position {up_to}")
            if not check:
                return
            started = time.monotonic()
            with progress("verifying", total=known_total(source, EventQuery(up_to_position=up_to))) as bar:
                result = verify(source, target, up_to_position=up_to, progress=lambda n: bar.update(n, n))
            seconds = time.monotonic() - started
            checkpoint.verified = {**result.as_record(), "up_to_position": up_to,
                                   "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            checkpoint.save()
    for problem in result.problems:
        say(f"  {problem}")
    if result.problem_count > len(result.problems):
        say(f"  ... {result.problem_count - len(result.problems):,} more")
    counts = f"{result.source_events:,} events in the source, {result.target_events:,} in the target"
    if result.ok:
        say(f"verified in {seconds:.1f} s: {counts}; sha256 of the bodies in source order, source and target: "
            f"{result.source_digest}")
        return
    say(f"verification FAILED ({seconds:.1f} s): {counts}; sha256 of the bodies in source order: "
        f"source {result.source_digest}, target {result.target_digest or 'not computed'}")
    raise typer.Exit(EXIT_MISMATCH)


# -- helpers ---------------------------------------------------------------------------------------

class _BadLines:
    """Says each bad line as `FILE:LINE: reason` (the first BAD_LINES_SHOWN; the rest are counted)."""

    def __init__(self, bar, name: str, strict: bool):
        self.bar, self.name, self.strict, self.seen = bar, name, strict, 0

    def __call__(self, number: int, reason: str) -> None:
        self.seen += 1
        if self.seen <= BAD_LINES_SHOWN:
            self.bar.say(f"{self.name}:{number}: {reason}" + ("" if self.strict else " (skipped)"))
        elif self.seen == BAD_LINES_SHOWN + 1:
            self.bar.say("more bad lines: counted, not shown")


def _settings():
    from eventreplay.settings import get_settings

    return get_settings()  # invalid settings: one message, exit 2 (InvalidSettings)


def _replay_filters(event_types: list[str] | None, since: str | None, until: str | None, match: str | None,
                    limit: int | None) -> ReplaySpec:
    """The filters checked by the Replay API's own rules (ReplaySpec), as a dry run: no target."""
    fields: dict = {"dry_run": True, "event_types": event_types or None, "since": since, "until": until,
                    "limit": limit}
    if match is not None:
        try:
            fields["match"] = parse_match(match)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--match") from None
    try:
        return ReplaySpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        if name in ("since", "until") and first["type"].startswith("datetime"):
            message += f" (ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00+02:00; got {first['input']!r})"
        raise typer.BadParameter(message, param_hint=OPTION_OF.get(name, name or "filters")) from None


@contextmanager
def _failures(*, interrupted: str = "interrupted") -> Iterator[None]:
    """The errors an operator can meet (a wrong URL, an unreadable file, an unavailable store): one
    line on stderr and exit 1, never a traceback. Ctrl-C or SIGTERM: `interrupted`, exit 130, after
    the cleanup on the way out (an export's partial file removed)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    except (PersistenceError, ArchiveFileError, CheckpointError, CopyError) as error:
        say(f"error: {error}")
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        say(f"error: {error.strerror or errno.errorcode.get(error.errno, error)}{where}")
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        say(interrupted)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    app()
