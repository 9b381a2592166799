"""Replays through the Replay API: start one (`replay`), list them (`jobs`), show one (`job`),
`cancel` and `resume`.

    eventreplay replay --event-type OrderPlaced --target-queue q --create-queue --wait
    eventreplay jobs --state running
    eventreplay cancel 3f2b...; eventreplay resume 3f2b... --wait

`--wait` follows the job until it ends (a progress bar when stderr is a terminal), then prints the
outcome and the digest; the exit code says how it ended (0 completed, 1 failed, cancelled or
interrupted). Exit codes: see eventreplay/cli/remote.py.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any, List, Optional

import typer

from eventreplay.cli.remote import (
    EXIT_FAILED, EXIT_OK, ApiKey, ApiUrl, Json, api_client, print_json, print_table, say, shorten, when,
)
from eventreplay.client.replay_api import ApiError, ReplayApiClient
from eventreplay.store.query import parse_match

ENDED = ("completed", "failed", "cancelled", "interrupted")
STATES = ("pending", "running", *ENDED)
POLL_S = 0.5  # how often --wait asks for the job: a bar that moves, at two small GETs a second
EXIT_INTERRUPTED = 130


def replay(
    event_type: Optional[List[str]] = typer.Option(
        None, "--event-type", "-t", help="Replay this event type (repeat for several); none = every type."),
    target_queue: Optional[str] = typer.Option(
        None, "--target-queue", "-q", help="Publish to this queue (default exchange, routing key = queue name)."),
    target_exchange: Optional[str] = typer.Option(
        None, "--target-exchange", "-x", help="Instead of a queue: publish to this exchange."),
    routing_key: Optional[str] = typer.Option(
        None, "--routing-key", help="With --target-exchange: this routing key (default: each event's original)."),
    since: Optional[str] = typer.Option(None, help="Events with timestamp >= since (ISO 8601; naive = UTC)."),
    until: Optional[str] = typer.Option(None, help="Events with timestamp < until (ISO 8601; naive = UTC)."),
    match: Optional[str] = typer.Option(
        None, help='Equality on top-level payload fields, as JSON: \'{"order_id": "o-1"}\'.'),
    limit: Optional[int] = typer.Option(None, help="At most this many events."),
    rate: Optional[float] = typer.Option(None, help="At most this many events per second."),
    speed: Optional[float] = typer.Option(
        None, help="Keep the original spacing between events, scaled (1 = real time, 60 = a minute per second)."),
    create_queue: bool = typer.Option(
        False, "--create-queue", help="Declare the target queue if it is missing (else a missing queue is an error)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the matching events, show a few; publish nothing."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job until it ends; exit code by its outcome."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Start a replay (POST /replay); prints the job id, or with --wait the outcome and digest."""
    request: dict[str, Any] = {
        "event_types": event_type or None, "target_queue": target_queue, "target_exchange": target_exchange,
        "routing_key": routing_key, "since": since, "until": until, "limit": limit, "rate": rate, "speed": speed,
    }
    if match is not None:
        try:
            request["match"] = parse_match(match)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--match") from None
    if create_queue:
        request["create_queue"] = True
    if dry_run:
        request["dry_run"] = True
    # only what was given: the API's defaults and checks decide the rest (its 422 says what is wrong)
    request = {key: value for key, value in request.items() if value is not None}
    with api_client(api_url, api_key) as api:
        if dry_run:
            _show_dry_run(api.dry_run(request), as_json)
            return
        try:
            job = api.start_replay(request)
        except ApiError as error:
            if error.status == 404 and target_queue and not create_queue and "create_queue" in error.message:
                error.message += " (here: --create-queue)"
            raise
        _started_or_followed(api, job, wait, as_json, "started")


def jobs(
    state: Optional[str] = typer.Option(None, help=f"Only jobs in this state ({', '.join(STATES)})."),
    limit: int = typer.Option(20, min=1, help="At most this many, newest first."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The replay jobs, newest first (GET /replays)."""
    with api_client(api_url, api_key) as api:
        found = api.list_replays(limit=limit, state=state)
    if as_json:
        print_json(found)
        return
    if not found:
        say("no replay jobs" + (f" in state {state}" if state else ""))
        return
    print_table(["ID", "STATE", "TARGET", "CONFIRMED", "MATCHED", "CREATED", "ENDED"], [
        [job["id"], job["state"], shorten(job.get("target") or "", 40), f"{job.get('confirmed') or 0:,}",
         _count(job.get("matched")), when(job.get("created_at")), when(job.get("ended_at"))]
        for job in found
    ])


def job(
    job_id: str = typer.Argument(..., metavar="ID", help="The job's id."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """One replay job: its state, counts, digest and request (GET /replays/ID)."""
    with api_client(api_url, api_key) as api:
        found = api.get_replay(job_id)
    if as_json:
        print_json(found)
        return
    _show_job(found)


def cancel(
    job_id: str = typer.Argument(..., metavar="ID", help="The job's id."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a pending or running replay; answers once it has stopped (POST /replays/ID/cancel)."""
    with api_client(api_url, api_key) as api:
        ended = api.cancel_replay(job_id)
    if as_json:
        print_json(ended)
        return
    print(f"{ended['state']}: {_progress_line(ended)}")
    if ended["state"] == "cancelled":
        say(f"continue it later with: eventreplay resume {ended['id']}")


def resume(
    job_id: str = typer.Argument(..., metavar="ID", help="The job's id."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job until it ends; exit code by its outcome."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Continue an interrupted, failed or cancelled replay after its last confirmed event."""
    with api_client(api_url, api_key) as api:
        job = api.resume_replay(job_id)
        _started_or_followed(api, job, wait, as_json, "resumed")


# -- following a job -------------------------------------------------------------------------------

def _started_or_followed(api: ReplayApiClient, job: dict, wait: bool, as_json: bool, verb: str) -> None:
    if not wait:
        if as_json:
            print_json(job)
        else:
            print(job["id"])  # stdout: the id alone, for JOB=$(eventreplay replay ...)
            say(f"{verb} replay {job['id']} into {job.get('target')}; follow it: eventreplay job {job['id']}")
        return
    ended = follow(api, job)
    if as_json:
        print_json(ended)
    else:
        _show_outcome(ended)
    raise typer.Exit(EXIT_OK if ended["state"] == "completed" else EXIT_FAILED)


def follow(api: ReplayApiClient, job: dict, *, show_bar: bool | None = None) -> dict:
    """The job once it has ended, asked for every POLL_S; a bar of its confirmed events on stderr
    while it runs (when stderr is a terminal). Ctrl-C stops the following, not the job."""
    if show_bar is None:
        show_bar = sys.stderr.isatty()
    try:
        if not show_bar:
            while job["state"] not in ENDED:
                time.sleep(POLL_S)
                job = api.get_replay(job["id"])
            return job
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.fields[state]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=Console(stderr=True)) as bar:
            task = bar.add_task("replay", total=job.get("matched"), state=job["state"], note="")
            while True:
                bar.update(task, total=job.get("matched"), completed=job.get("confirmed") or 0,
                           state=job["state"], note=shorten(job.get("reconnecting") or "", 50))
                if job["state"] in ENDED:
                    return job
                time.sleep(POLL_S)
                job = api.get_replay(job["id"])
    except KeyboardInterrupt:
        say(f"stopped following; the replay goes on: eventreplay job {job['id']} (eventreplay cancel {job['id']})")
        raise typer.Exit(EXIT_INTERRUPTED) from None


# -- output ----------------------------------------------------------------------------------------

def _show_outcome(job: dict) -> None:
    print(f"{job['state']}: {_progress_line(job)}{_took(job)}")
    print(f"job:    {job['id']}")
    print(f"digest: {job.get('digest')}")
    for label in ("error", "notice"):
        if job.get(label):
            print(f"{label}:  {job[label]}")
    if job["state"] in ("failed", "cancelled", "interrupted"):
        say(f"continue it after its last confirmed event: eventreplay resume {job['id']} --wait")


def _show_job(job: dict) -> None:
    rows = [
        ("id", job["id"]), ("state", job["state"]), ("target", job.get("target")),
        ("request", _request_text(job.get("request") or {})),
        ("matched", _count(job.get("matched"))), ("published", _count(job.get("published"))),
        ("confirmed", _count(job.get("confirmed"))),
        ("positions", f"{job.get('first_position') or '-'} .. {job.get('last_position') or '-'}"
                      f" (archive up to {job.get('up_to_position') or '-'})"),
        ("created", when(job.get("created_at"))), ("started", when(job.get("started_at"))),
        ("ended", when(job.get("ended_at"))), ("runs", job.get("runs")), ("owner", job.get("owner")),
        ("digest", job.get("digest")),
    ]
    rows += [(label, job[label]) for label in ("reconnecting", "error", "notice") if job.get(label)]
    for label, value in rows:
        print(f"{label + ':':<11}{'-' if value is None else value}")


def _show_dry_run(answer: dict, as_json: bool) -> None:
    if as_json:
        print_json(answer)
        return
    print(f"dry run: {answer['matched']:,} events match; nothing was published")
    samples = answer.get("samples") or []
    if samples:
        print_table(["POSITION", "TIMESTAMP", "TYPE", "EVENT ID"], [
            [event["position"], when(event.get("timestamp")), event["event_type"], event["event_id"]]
            for event in samples
        ], title="first matching events")


def _progress_line(job: dict) -> str:
    matched = job.get("matched")
    of = f" of {matched:,}" if isinstance(matched, int) else ""
    return f"{job.get('confirmed') or 0:,}{of} events confirmed into {job.get('target')}"


def _took(job: dict) -> str:
    try:
        seconds = (datetime.fromisoformat(job["ended_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    return f" in {seconds:.1f} s"


def _request_text(request: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in request.items()) or "-"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
