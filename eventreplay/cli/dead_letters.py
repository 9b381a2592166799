"""The archive's dead letters through the Replay API: list them (`dead-letters`), send them back
to the archive queue once their cause is fixed (`redrive`), or drop them (`discard`).

    eventreplay dead-letters --reason "body is not valid JSON"
    eventreplay redrive --reason "body is not valid JSON"     # asks first; --yes does not
    eventreplay discard --id 7f1c... --id 9a0b... --yes

`redrive` and `discard` name what they act on: --all, --reason (every message of that reason),
and/or --id (repeatable). At a terminal they ask before acting; elsewhere they want --yes.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from eventreplay.cli.remote import (
    EXIT_BAD_INPUT, EXIT_FAILED, ApiKey, ApiUrl, Json, api_client, print_json, print_table, say, shorten, when,
)
from eventreplay.client.replay_api import ReplayApiClient

Reason = typer.Option(None, "--reason", "-r", help="Only the dead letters of this reason.")
Ids = typer.Option(None, "--id", help="This dead letter (its id in `eventreplay dead-letters`; repeat for several).")
All = typer.Option(False, "--all", help="Every dead letter in the queue.")
Yes = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def dead_letters(
    reason: Optional[str] = Reason,
    limit: int = typer.Option(50, min=1, max=1000, help="List at most this many (the counts cover all of them)."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The dead-letter queue's messages, by reason, without taking them off it (GET /dead-letters)."""
    with api_client(api_url, api_key) as api:
        found = api.dead_letters(reason=reason, limit=limit)
    if as_json:
        print_json(found)
        return
    by_reason = found.get("by_reason") or []
    print(f"dead letters: {found.get('total', 0):,}" + "".join(
        f"{'; ' if i else ' ('}{item['reason']}: {item['count']:,}" for i, item in enumerate(by_reason))
        + (")" if by_reason else ""))
    items = found.get("items") or []
    if items:
        print_table(["ID", "REASON", "DEAD-LETTERED", "ROUTING KEY", "TYPE", "SIZE", "PREVIEW"], [
            [item["id"], item.get("reason"), when(item.get("dead_lettered_at")), item.get("routing_key"),
             item.get("event_type"), item.get("size"), shorten(item.get("preview") or "", 50)]
            for item in items
        ])


def redrive(
    reason: Optional[str] = Reason,
    ids: Optional[List[str]] = Ids,
    every: bool = All,
    yes: bool = Yes,
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Send dead letters back to the archive queue, each once (POST /dead-letters/redrive).

    Those that fail again return to the dead-letter queue with their new reason."""
    _act("redrive", "redriven", reason, ids, every, yes, as_json, api_url, api_key)


def discard(
    reason: Optional[str] = Reason,
    ids: Optional[List[str]] = Ids,
    every: bool = All,
    yes: bool = Yes,
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Drop dead letters for good (POST /dead-letters/discard)."""
    _act("discard", "discarded", reason, ids, every, yes, as_json, api_url, api_key)


def _act(verb: str, done: str, reason: str | None, ids: list[str] | None, every: bool, yes: bool, as_json: bool,
         api_url: str | None, api_key: str | None) -> None:
    if every and (reason or ids):
        raise typer.BadParameter("--all stands alone: without --reason and --id", param_hint="--all")
    if not (every or reason or ids):
        raise typer.BadParameter(f"say which dead letters to {verb}: --all, --reason REASON and/or --id ID",
                                 param_hint="--all / --reason / --id")
    with api_client(api_url, api_key) as api:
        if not yes:
            _confirm(api, verb, reason, ids)
        answer = getattr(api, f"{verb}_dead_letters")(reason=reason, ids=ids or None)
    if as_json:
        print_json(answer)
        return
    print(f"{done} {answer.get(done, 0):,}; {answer.get('remaining', 0):,} remain in the dead-letter queue")
    if ids and answer.get(done, 0) < len(set(ids)):
        missing = len(set(ids)) - answer.get(done, 0)
        say(f"{missing:,} of the given ids {'was' if missing == 1 else 'were'} not in the dead-letter queue "
            f"(or not of that reason); a dead letter that came back after a redrive has a new id")


def _confirm(api: ReplayApiClient, verb: str, reason: str | None, ids: list[str] | None) -> None:
    if not sys.stdin.isatty():
        say(f"error: {verb} changes the dead-letter queue: confirm with --yes when not at a terminal")
        raise typer.Exit(EXIT_BAD_INPUT)
    if ids:
        what = f"{len(ids):,} dead letter{'s' if len(ids) != 1 else ''}" + (f" of reason {reason!r}" if reason else "")
    else:
        listed = api.dead_letters(reason=reason, limit=1)
        count = next((item["count"] for item in listed.get("by_reason") or [] if item["reason"] == reason),
                     None) if reason else listed.get("total")
        what = (f"{count:,} " if isinstance(count, int) else "the ") + "dead letters" + (
            f" of reason {reason!r}" if reason else "")
    target = "back to the archive queue" if verb == "redrive" else "for good"
    if not typer.confirm(f"{verb.capitalize()} {what} {target}?", default=False):
        say("nothing done")
        raise typer.Exit(EXIT_FAILED)
