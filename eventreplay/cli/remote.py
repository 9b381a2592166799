"""What the commands that talk to the Replay API share: the client (REPLAY_API_URL / REPLAY_API_KEY
from the settings, --api-url / --api-key instead), the exit codes, and the output (tables for
people, --json for scripts).

Exit codes of every API command:
  0  done (a replay: completed)
  1  a replay that failed, was cancelled or interrupted; the API failed to serve (5xx, 503)
  2  bad input: a wrong option, or the API refused the request (404, 409, 422, 401, ...)
  3  the API is unreachable (not running, wrong URL, no answer in time)
"""
from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from typing import Annotated, Any, Iterator, Optional

import typer

from eventreplay.client.replay_api import ApiError, ReplayApiClient

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3

ApiUrl = Annotated[Optional[str], typer.Option(
    "--api-url", help="The Replay API's base URL; default: REPLAY_API_URL (environment, .env).", show_default=False)]
ApiKey = Annotated[Optional[str], typer.Option(
    "--api-key", help="The API key (X-API-Key) for starting, cancelling, redriving; default: REPLAY_API_KEY.",
    show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table (for scripts).")]


@contextmanager
def api_client(api_url: str | None, api_key: str | None) -> Iterator[ReplayApiClient]:
    """A client of the API the options or the settings name; an `ApiError` inside becomes one line
    on stderr and its exit code (see the module's doc), never a traceback."""
    if api_url is None or api_key is None:
        from eventreplay.settings import get_settings

        settings = get_settings()  # invalid settings: one message, exit 2 (InvalidSettings)
        api_url = api_url or settings.replay_api_url
        if api_key is None and settings.replay_api_key is not None:
            api_key = settings.replay_api_key.get_secret_value()
    if not api_url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"an http:// or https:// URL, got {api_url!r}", param_hint="--api-url / REPLAY_API_URL")
    # the client retries a refused GET once: expected, and said better by the error line if it fails
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    client = ReplayApiClient(api_url, api_key or None)
    try:
        with failures():
            yield client
    finally:
        client.close()


@contextmanager
def failures() -> Iterator[None]:
    try:
        yield
    except ApiError as error:
        say(f"error: {error.message}")
        raise typer.Exit(exit_code(error)) from None


def exit_code(error: ApiError) -> int:
    if error.unreachable:
        return EXIT_UNREACHABLE
    if 400 <= error.status < 500:
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def say(text: str) -> None:
    """A line for the operator on stderr (stdout carries the results)."""
    print(text, file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A table on stdout; wide enough for ids and times also when stdout is a pipe (rich would
    squeeze it into 80 columns there)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 220, highlight=False)
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(table)


def shorten(text: Any, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def when(moment: str | None) -> str:
    """An API timestamp, to the second, for a table."""
    if not moment:
        return "-"
    return moment.replace("T", " ")[:19]
