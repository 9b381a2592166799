"""`/events`: browse and search the archive by type and time window, page by page; one event's
JSON body and metadata. Pages follow the API's cursor (`after` = last position seen)."""
from __future__ import annotations

import json

from flask import Blueprint, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from eventreplay.ui.api_client import ApiError, get_api
from eventreplay.ui.forms import EventSearchForm, utc_iso
from eventreplay.ui.view_helpers import format_number

bp = Blueprint("events", __name__, url_prefix="/events")


def _cursor(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@bp.route("/")
def index():
    form = EventSearchForm(request.args, meta={"csrf": False})
    types, types_error = [], None
    try:
        types = get_api().event_types()
    except ApiError as error:
        types_error = error.message
    form.event_type.choices = [SelectChoice("", "All types")] + [
        SelectChoice(str(t["event_type"]), f"{t['event_type']} ({format_number(t.get('count'))})") for t in types]

    page, error = None, types_error
    status = 200
    after = _cursor(request.args.get("after"))
    # The cursors of the pages before this one ("s" = the first page), carried in the URL, so that
    # "Previous" works although the API only pages forwards.
    trail = [t for t in request.args.get("trail", "").split(",") if t == "s" or _cursor(t) is not None]
    if form.validate():
        try:
            page = get_api().events(
                event_types=[form.event_type.data] if form.event_type.data else [],
                since=utc_iso(form.since.data), until=utc_iso(form.until.data),
                after=after, limit=int(form.limit.data or 50),
            )
        except ApiError as api_error:
            error = api_error.message
            # the list of events is this page's content: without it, 502 Bad Gateway (as on
            # /replays/), with the readable notice; a failed type list alone only narrows the picker
            status = api_error.page_status
    query = {k: v for k, v in request.args.items() if k in ("event_type", "since", "until", "limit") and v}
    links = {}
    if page and page.get("next_after") is not None:
        links["next"] = url_for("events.index", **query, after=page["next_after"],
                                trail=",".join(trail + ["s" if after is None else str(after)]))
    if after is not None:
        previous = trail[-1] if trail else "s"
        args = dict(query)
        if previous != "s":
            args["after"] = previous
        if trail[:-1]:
            args["trail"] = ",".join(trail[:-1])
        links["previous"] = url_for("events.index", **args)
        links["first"] = url_for("events.index", **query)
    return render_template("events/index.html", form=form, page=page, error=error, links=links,
                           page_number=len(trail) + 1 if after is not None else 1), status


@bp.route("/<event_id>")
def detail(event_id: str):
    event = get_api().get_event(event_id)
    body = event.get("body")
    return render_template(
        "events/detail.html", event=event,
        # pretty-printed here (a body that is not JSON comes as text: shown as it is); Jinja escapes
        # it on output like every other value
        body_json=body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False),
        properties_json=json.dumps(event.get("properties") or {}, indent=2, ensure_ascii=False, sort_keys=True),
    )
