"""Small presentation helpers shared by the pages and the JSON the pages poll.

Job figures (percent, throughput, duration) are computed here, once, so the server-rendered page
and its live updates always agree.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from flask import request

from eventreplay.replay.jobs import UNFINISHED_STATES, JobState

# the job states as the API names them: a job that may still publish (live progress, can be
# cancelled), and one that can be resumed
UNFINISHED = frozenset(state.value for state in UNFINISHED_STATES)
RESUMABLE = frozenset(state.value for state in JobState if state.resumable)


def wants_json() -> bool:
    """The page's own fetch() calls ask for JSON (and the *.json endpoints always answer it)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.endswith(".json") or best == "application/json"


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def format_when(value: Any) -> str:
    moment = parse_time(value) if not isinstance(value, datetime) else value
    if moment is None:
        return "—"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_number(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{value:,.0f}".replace(",", "\u202f")  # narrow no-break space: 12 345
    return "—" if value is None else str(value)


def describe_request(request: dict[str, Any]) -> str:
    """One line saying what a job replays: types, window, limit, pace."""
    types = [request.get("event_type")] if request.get("event_type") else []
    types += [t for t in request.get("event_types") or [] if t not in types]
    parts = [", ".join(types) or "all types"]
    if request.get("since") or request.get("until"):
        parts.append(f"{format_when(request.get('since')) if request.get('since') else '…'} → "
                     f"{format_when(request.get('until')) if request.get('until') else '…'}")
    if request.get("match"):
        parts.append("match " + ", ".join(f"{k}={v}" for k, v in request["match"].items()))
    if request.get("limit"):
        parts.append(f"limit {request['limit']}")
    if request.get("rate"):
        parts.append(f"{request['rate']:g}/s")
    if request.get("speed"):
        parts.append(f"speed ×{request['speed']:g}")
    return " · ".join(parts)


def job_view(job: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The fields a job row shows, JSON-able (the live updates send exactly this)."""
    now = now or datetime.now(timezone.utc)
    state = str(job.get("state") or "unknown")
    matched = job.get("matched")  # None: not counted yet (the replay counts as it reads)
    published = job.get("published") or 0
    started = parse_time(job.get("started_at"))
    ended = parse_time(job.get("ended_at"))
    elapsed = ((ended or now) - started).total_seconds() if started else None
    if elapsed is not None:
        elapsed = max(elapsed, 0.0)
    if matched:
        # rounded down: 100% only when every matched event is published
        percent = min(100.0, math.floor(1000.0 * published / matched) / 10)
    else:
        # nothing to publish: a completed job is done, anything else has not started counting
        percent = 100.0 if state == "completed" else 0.0
    # a rate over the first fraction of a second says little: wait for one second of data
    throughput = published / elapsed if elapsed and published and (ended or elapsed >= 1.0) else None
    request = job.get("request") or {}
    return {
        "id": str(job.get("id", "")),
        "state": state,
        "active": state in UNFINISHED,
        "can_cancel": state in UNFINISHED,
        "can_resume": state in RESUMABLE,
        "matched": matched,
        "published": published,
        "confirmed": job.get("confirmed") or 0,
        "percent": percent,
        "percent_text": f"{percent:.0f}%" if percent.is_integer() else f"{percent:.1f}%",
        "progress_text": (f"{format_number(published)} of {format_number(matched)}" if matched is not None
                          else f"{format_number(published)} (matches counted as they are read)"),
        "throughput": round(throughput, 1) if throughput else None,
        "throughput_text": f"{throughput:,.0f} events/s".replace(",", "\u202f") if throughput else "—",
        "created_at": format_when(job.get("created_at")),
        "started_at": format_when(job.get("started_at")),
        "ended_at": format_when(job.get("ended_at")),
        "duration_text": format_duration(elapsed),
        "error": job.get("error"),
        "reconnecting": job.get("reconnecting"),
        "notice": job.get("notice"),
        "owner_text": _owner_text(job),
        "target": job.get("target") or _target_of(request),
        "summary": describe_request(request),
    }


def _target_of(request: dict[str, Any]) -> str:
    if request.get("target_queue"):
        return f"queue '{request['target_queue']}'"
    if request.get("target_exchange"):
        return f"exchange '{request['target_exchange']}'"
    return "—"


def _owner_text(job: dict[str, Any]) -> str:
    """Which API instance runs the job, and how it got there: "host:1234:ab12 (run 2, taken over once)"."""
    owner = job.get("owner") or "—"
    runs, takeovers = job.get("runs") or 0, job.get("takeovers") or 0
    more = [f"run {runs}"] if runs > 1 else []
    if takeovers:
        more.append("taken over once" if takeovers == 1 else f"taken over {takeovers} times")
    if job.get("cancel_requested") and str(job.get("state")) in UNFINISHED:
        more.append("cancel requested")
    return owner + (f" ({', '.join(more)})" if more else "")
