"""The archived events through the Replay API (`events`): what a replay with these filters would
send, in the same order.

    eventreplay events --event-type OrderPlaced --since 2024-05-01 --limit 50
    eventreplay events --match '{"order_id": "o-1"}' --json
"""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from eventreplay.cli.remote import ApiKey, ApiUrl, Json, api_client, print_json, print_table, say, shorten, when
from eventreplay.store.query import parse_match

PAGE = 1000  # the API's largest page


def events(
    event_type: Optional[List[str]] = typer.Option(
        None, "--event-type", "-t", help="Only this event type (repeat for several); none = every type."),
    since: Optional[str] = typer.Option(None, help="Events with timestamp >= since (ISO 8601; naive = UTC)."),
    until: Optional[str] = typer.Option(None, help="Events with timestamp < until (ISO 8601; naive = UTC)."),
    match: Optional[str] = typer.Option(
        None, help='Equality on top-level payload fields, as JSON: \'{"order_id": "o-1"}\'.'),
    limit: int = typer.Option(20, min=1, help="At most this many (read in pages of 1,000)."),
    as_json: Json = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Archived events in the archive's order (GET /events): a table, or --json."""
    match_text = None
    if match is not None:
        try:
            match_text = json.dumps(parse_match(match))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--match") from None
    found: list[dict] = []
    after = None
    with api_client(api_url, api_key) as api:
        while len(found) < limit:
            page = api.events(event_types=event_type or (), since=since, until=until, match=match_text,
                              after=after, limit=min(PAGE, limit - len(found)))
            found += page["items"]
            after = page.get("next_after")
            if after is None:
                break
    if as_json:
        print_json(found)
        return
    if not found:
        say("no events match")
        return
    print_table(["POSITION", "TIMESTAMP", "TYPE", "ROUTING KEY", "EVENT ID", "BODY"], [
        [event["position"], when(event.get("timestamp")), event["event_type"], event.get("routing_key"),
         event["event_id"], shorten(json.dumps(event.get("body"), ensure_ascii=False)
                                    if not isinstance(event.get("body"), str) else event["body"], 70)]
        for event in found
    ])
    if after is not None:
        say(f"showing the first {len(found):,}; there may be more: a larger --limit, or narrower filters")
