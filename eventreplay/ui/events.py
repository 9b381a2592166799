"""`/events`: browse and search the archive by types, time window and payload fields (one order's or
one user's history), page by page; one event's JSON body and metadata. Pages follow the API's
cursor (`after` = last position seen).

There is no "newest first" and no "jump to the latest": the API pages forwards by position only and
tells neither the last position nor a filter's count with positions, so the last page could only be
found by reading every page (or by probing cursors), which this page does not do."""
from __future__ import annotations

import json

from flask import Blueprint, render_template, request, url_for
from wtforms import StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from eventreplay.ui.api_client import ApiError, get_api
from eventreplay.ui.forms import EventSearchForm, MultiCheckboxField, utc_iso
from eventreplay.ui.view_helpers import format_number

bp = Blueprint("events", __name__, url_prefix="/events")

# the search's own parameters, carried into the pager's links (event_type may repeat)
SEARCH_ARGS = ("event_type", "since", "until", "match", "limit")


class EventBrowseForm(EventSearchForm):
    """The search form with several types (the API takes `event_type` repeated; a single
    `?event_type=X`, as older links have it, still ticks that one) and a payload match."""

    event_type = MultiCheckboxField("Event types", choices=[], validate_choice=False,
                                    description="None ticked: every type.")
    match = StringField("Payload match (JSON object)", validators=[Optional(), Length(max=2000)],
                        description='Equality on top-level fields, e.g. {"order_id": "o-1"}.')


def _cursor(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@bp.route("/")
def index():
    form = EventBrowseForm(request.args, meta={"csrf": False})
    types, types_error = [], None
    try:
        types = get_api().event_types()
    except ApiError as error:
        types_error = error.message
    form.event_type.choices = [
        SelectChoice(str(t["event_type"]), f"{t['event_type']} ({format_number(t.get('count'))})") for t in types]
    # a type the list does not hold (a link from elsewhere, or the list failed) stays ticked and visible
    known = {choice.value for choice in form.event_type.choices}
    form.event_type.choices += [SelectChoice(t, t) for t in form.event_type.data or [] if t and t not in known]

    page, error = None, types_error
    status = 200
    after = _cursor(request.args.get("after"))
    # The cursors of the pages before this one ("s" = the first page), carried in the URL, so that
    # "Previous" works although the API only pages forwards.
    trail = [t for t in request.args.get("trail", "").split(",") if t == "s" or _cursor(t) is not None]
    if form.validate():
        try:
            page = get_api().events(
                event_types=[t for t in form.event_type.data or [] if t],
                since=utc_iso(form.since.data), until=utc_iso(form.until.data),
                match=(form.match.data or "").strip() or None,
                after=after, limit=int(form.limit.data or 50),
            )
        except ApiError as api_error:
            error = api_error.message
            # a field the API refused is explained beside that field, as on the replay form
            for name, messages in api_error.field_errors().items():
                if name in ("match", "since", "until"):
                    form[name].errors = list(form[name].errors) + messages
            # the list of events is this page's content: without it, 502 Bad Gateway (as on
            # /replays/), with the readable notice; a failed type list alone only narrows the picker
            status = api_error.page_status
    else:
        # the form's own errors are shown beside the fields: no list, no call to the API
        status = 422
    query = {k: [v for v in request.args.getlist(k) if v] for k in SEARCH_ARGS}
    query = {k: v if k == "event_type" else v[0] for k, v in query.items() if v}
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


# payload fields that name one order's or one user's history: the detail page links to a search on them
HISTORY_FIELDS = ("order_id", "user_id")


def _history_links(body) -> list[tuple[str, str, str]]:
    """(field, value, search URL) for each history field the body holds as a plain value."""
    if not isinstance(body, dict):
        return []
    return [(key, str(body[key]), url_for("events.index", match=json.dumps({key: body[key]}, ensure_ascii=False)))
            for key in HISTORY_FIELDS
            if isinstance(body.get(key), (str, int)) and not isinstance(body.get(key), bool) and body.get(key) != ""]


@bp.route("/<event_id>")
def detail(event_id: str):
    event = get_api().get_event(event_id)
    body = event.get("body")
    return render_template(
        "events/detail.html", event=event, history=_history_links(body),
        # pretty-printed here (a body that is not JSON comes as text: shown as it is); Jinja escapes
        # it on output like every other value
        body_json=body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False),
        properties_json=json.dumps(event.get("properties") or {}, indent=2, ensure_ascii=False, sort_keys=True),
    )
