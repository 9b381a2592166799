"""The overview's ingest card as the page shows it: the API's `GET /ingest` turned into texts and
chart points, once, here, so the server-rendered page and its live updates always agree (the
page's script draws the chart from `points`)."""
from __future__ import annotations

from typing import Any

from eventreplay.client.replay_api import ApiError, ReplayApiClient
from eventreplay.ui.view_helpers import format_duration, format_number, format_when, parse_time


def load_ingest(api: ReplayApiClient) -> dict[str, Any]:
    """The card's view; an API failure is the card's `error`, never the page's."""
    try:
        return ingest_view(api.ingest())
    except ApiError as error:
        return unavailable(error.message)


def unavailable(message: str) -> dict[str, Any]:
    """The card when the API could not say: every figure unknown, the reason shown."""
    return {"error": message, "points": [], "max": 0, "last_hour": 0, "last_hour_text": "—",
            "consumer": "unknown", "consumer_ok": None, "queue_text": "—", "lag_text": "—",
            "dead_letters": None, "dead_letters_text": "—", "broker": "—", "broker_ok": None,
            "oldest_event": "—", "newest_event": "—"}


def ingest_view(data: dict[str, Any]) -> dict[str, Any]:
    queue = data.get("archive_queue")
    dead = data.get("dead_letter_queue")
    broker = str(data.get("broker") or "—")
    points = []
    for item in data.get("per_minute") or []:
        minute = parse_time(item.get("minute"))
        count = int(item.get("count") or 0)
        label = minute.strftime("%H:%M") if minute else "?"
        points.append({"minute": item.get("minute"), "label": label, "count": count,
                       "title": f"{label} UTC: {format_number(count)} event{'' if count == 1 else 's'}"})
    last_hour = sum(p["count"] for p in points)
    if queue is None:
        consumer, consumer_ok = ("unknown (broker unreachable)" if broker != "ok" else "no archive queue"), False
    else:
        consumer_ok = queue["consumers"] > 0
        consumer = "connected" if consumer_ok else "not connected"
    lag = data.get("lag_seconds")
    return {
        "error": None,
        "points": points,
        "max": max((p["count"] for p in points), default=0),
        "last_hour": last_hour,
        "last_hour_text": format_number(last_hour),
        "consumer": consumer,
        "consumer_ok": consumer_ok,
        "queue_text": (f"{format_number(queue['messages'])} waiting in {queue['name']} ({queue['consumers']} "
                       f"consumer{'' if queue['consumers'] == 1 else 's'})" if queue else "—"),
        "lag_text": format_duration(lag) if lag is not None else "—",
        "dead_letters": dead["messages"] if dead else None,
        "dead_letters_text": format_number(dead["messages"]) if dead else "—",
        "broker": broker,
        "broker_ok": broker == "ok",
        "oldest_event": format_when(data.get("oldest_event")),
        "newest_event": format_when(data.get("newest_event")),
    }
