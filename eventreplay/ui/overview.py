"""`/`: the prototype's entry point. The replay form (which still accepts the prototype's post of
`event_type` + `target_queue`), its preview, and the overview: counts by type, total, readiness,
and the ingest story (events per minute over the last hour, consumer, queue depth, lag, dead
letters: ingest_view.py)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from eventreplay.ui import ingest_view
from eventreplay.ui.api_client import ApiError, get_api
from eventreplay.ui.forms import ActionForm, ReplayForm
from eventreplay.ui.view_helpers import format_number, format_when, job_view

bp = Blueprint("overview", __name__)

RECENT_JOBS = 5


def load_overview() -> dict[str, Any]:
    """Counts and readiness; each part fails on its own so one outage does not blank the page."""
    api = get_api()
    data: dict[str, Any] = {"types": [], "total": None, "ready": None, "error": None, "archive": None,
                            "ingest": None}
    try:
        types = api.event_types()
        data["types"] = [{"event_type": str(t.get("event_type")), "count": int(t.get("count") or 0)} for t in types]
        data["total"] = sum(t["count"] for t in data["types"])
    except ApiError as error:
        data["error"] = error.message
        if error.unreachable:
            # the same cause would fail /ready too: say it once
            data["ready"] = {"api": "unreachable"}
            data["ingest"] = ingest_view.unavailable(error.message)
            return data
    try:
        data["ready"] = api.ready()
    except ApiError as error:
        data["ready"] = {"api": error.message}
    try:
        data["archive"] = api.archive()
    except ApiError:
        pass  # the counts above already say what is wrong
    data["ingest"] = ingest_view.load_ingest(api)
    return data


def chart_rows(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    top = max((t["count"] for t in types), default=0)
    return [
        {**t, "count_text": format_number(t["count"]), "width": round(100.0 * t["count"] / top, 1) if top else 0}
        for t in sorted(types, key=lambda t: (-t["count"], t["event_type"]))
    ]


def recent_jobs() -> tuple[list[dict[str, Any]], str | None]:
    try:
        return [job_view(job) for job in get_api().list_replays(limit=RECENT_JOBS)], None
    except ApiError as error:
        return [], error.message


@bp.route("/", methods=("GET", "POST"))
def index():
    overview = load_overview()
    form = ReplayForm()
    form.event_types.choices = [SelectChoice(t["event_type"], f"{t['event_type']} ({format_number(t['count'])})")
                                for t in overview["types"]]
    preview = None
    # Status codes when the API is down (the same rule on every page): a page whose main content
    # comes from the API answers 502 with a readable notice (/replays/, /events/, a job, an event).
    # This page's main content is the replay form, which still renders: a GET stays 200, with the
    # notice in the archive card; a submitted form the API could not take is 502 (_show_api_error).
    status = 200
    if not form.is_submitted() and request.args.get("event_type"):
        # "Replay this type" links from the events pages prefill the form
        form.event_type.data = request.args["event_type"][:200]
    if form.validate_on_submit():
        replay_request = form.to_request()
        try:
            if form.preview.data:
                preview = get_api().dry_run(replay_request)
            else:
                job = job_view(get_api().start_replay(replay_request))
                flash(f"Replay started: {job['summary']} → {job['target']}.", "success")
                # the job's own page: its progress bar, live, and its cancel button
                return redirect(url_for("replays.detail", job_id=job["id"]))
        except ApiError as error:
            status = _show_api_error(form, error)
    elif form.is_submitted():
        status = 422  # field errors are shown beside the fields
    jobs, jobs_error = recent_jobs()
    return render_template(
        "overview.html", form=form, overview=overview, chart=chart_rows(overview["types"]),
        preview=preview, jobs=jobs, jobs_error=jobs_error, action_form=ActionForm(),
    ), status


def _show_api_error(form: ReplayForm, error: ApiError) -> int:
    """Put the API's field errors beside our fields; anything else goes in a message at the top."""
    if error.status == 404 and not error.errors and (form.target_queue.data or form.target_exchange.data):
        # POST /replay answers 404 for one reason: the target does not exist. The API's own message
        # speaks to API clients ("send create_queue": true); the form says it in its own words.
        if form.target_queue.data:
            form.target_queue.errors = list(form.target_queue.errors) + [
                f"Queue '{form.target_queue.data}' does not exist. "
                "Tick “Create the queue if missing” to declare it."]
        else:
            form.target_exchange.errors = list(form.target_exchange.errors) + [
                f"Exchange '{form.target_exchange.data}' does not exist. Declare it in RabbitMQ first."]
        return 404
    leftover = []
    for name, messages in error.field_errors().items():
        field = getattr(form, name, None) if name in form._fields else None
        if field is not None:
            field.errors = list(field.errors) + messages
        else:
            leftover += messages
    if not error.field_errors() or leftover:
        flash(error.message if not leftover else f"{error.message} ({'; '.join(leftover)})", "error")
    return error.page_status


@bp.route("/overview.json")
def overview_json():
    """Polled by the overview page to keep counts and readiness live."""
    data = load_overview()
    data["chart"] = chart_rows(data["types"])
    data["total_text"] = format_number(data["total"])
    if data["archive"]:
        for name in ("oldest_event", "newest_event"):
            data["archive"][name] = format_when(data["archive"].get(name))
    return jsonify(data)
