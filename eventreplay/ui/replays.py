"""`/replays`: every job with live progress, cancel and resume. The pages poll `status.json`
(proxied to the API on the server, so the API key never reaches the browser)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from eventreplay.replay.jobs import JobState
from eventreplay.ui.api_client import ApiError, get_api
from eventreplay.ui.forms import ActionForm
from eventreplay.ui.view_helpers import job_view, wants_json

bp = Blueprint("replays", __name__, url_prefix="/replays")

STATES = tuple(state.value for state in JobState)
LIST_LIMIT = 200


def _state_filter() -> str | None:
    state = request.args.get("state") or None
    return state if state in STATES else None


@bp.route("/")
def index():
    state = _state_filter()
    jobs, error, status = [], None, 200
    try:
        jobs = [job_view(job) for job in get_api().list_replays(limit=LIST_LIMIT, state=state)]
    except ApiError as api_error:
        # The list is this page's content: without it the answer is 502 (like /events/), yet the
        # page still renders with the notice, and its polling recovers once the API answers again.
        error, status = api_error.message, api_error.page_status
    return render_template("replays/index.html", jobs=jobs, state=state, states=STATES,
                           action_form=ActionForm(), error=error), status


@bp.route("/status.json")
def status():
    state = _state_filter()
    limit = request.args.get("limit", LIST_LIMIT, type=int)
    limit = min(max(limit, 1), LIST_LIMIT)
    try:
        jobs = [job_view(job) for job in get_api().list_replays(limit=limit, state=state)]
    except ApiError as error:
        # the page keeps its last figures and shows the message; polling goes on
        return jsonify(jobs=None, error=error.message), 200
    return jsonify(jobs=jobs, error=None)


@bp.route("/<uuid:job_id>")
def detail(job_id):
    job = get_api().get_replay(str(job_id))
    return render_template("replays/detail.html", job=job_view(job), raw=job, action_form=ActionForm())


@bp.route("/<uuid:job_id>.json")
def detail_json(job_id):
    try:
        return jsonify(job=job_view(get_api().get_replay(str(job_id))), error=None)
    except ApiError as error:
        return jsonify(job=None, error=error.message), 200


@bp.post("/<uuid:job_id>/<any(cancel, resume):action>")
def act(job_id, action):
    # CSRFProtect has already refused a post without a valid token; this form only re-checks it
    if not ActionForm().validate_on_submit():
        abort(400)
    api = get_api()
    call = api.cancel_replay if action == "cancel" else api.resume_replay
    try:
        job = job_view(call(str(job_id)))
    except ApiError as error:
        if wants_json():
            return jsonify(job=None, error=error.message), (409 if error.status == 409 else 502)
        flash(error.message, "error")
    else:
        if wants_json():
            return jsonify(job=job, error=None)
        verb = "Cancel requested" if action == "cancel" else "Resumed"
        flash(f"{verb}: replay {job['id'][:8]} is {job['state']}.", "success")
    return redirect(_back_to())


def _back_to() -> str:
    # back where the button was: the list or the job's page (only our own paths, never an open redirect)
    target = request.form.get("next", "")
    if target == "/" or (target.startswith("/replays") and "//" not in target and "\\" not in target):
        return target
    return url_for("replays.index")
