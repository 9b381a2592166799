"""`/dead-letters`: the dead-letter queue's messages (counts by reason, the list, a reason filter),
and Redrive / Discard of the selected ones or of all (of the filtered reason). Everything goes
through the Replay API (GET /dead-letters, POST /dead-letters/redrive and /discard)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from eventreplay.ui.api_client import ApiError, get_api
from eventreplay.ui.forms import ActionForm

bp = Blueprint("dead_letters", __name__, url_prefix="/dead-letters")

LIST_LIMIT = 500  # listed on the page at most (the API's counts cover more)
MAX_REASON = 2000  # the API's limit on a reason filter


def _reason_filter(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_REASON] or None


@bp.route("/")
def index():
    reason = _reason_filter(request.args.get("reason"))
    listing, error, status = {"total": 0, "by_reason": [], "items": []}, None, 200
    try:
        listing = get_api().dead_letters(reason=reason, limit=LIST_LIMIT)
    except ApiError as api_error:
        # the list is this page's content: without it, 502 with the notice (as /replays/)
        error, status = api_error.message, api_error.page_status
    return render_template("dead_letters/index.html", listing=listing, reason=reason, limit=LIST_LIMIT,
                           action_form=ActionForm(), error=error), status


@bp.post("/<any(redrive, discard):action>")
def act(action):
    # CSRFProtect has already refused a post without a valid token; this re-checks it
    if not ActionForm().validate_on_submit():
        abort(400)
    reason = _reason_filter(request.form.get("reason"))
    back = redirect(url_for("dead_letters.index", reason=reason) if reason else url_for("dead_letters.index"))
    if request.form.get("scope") == "selected":
        ids = [value for value in request.form.getlist("ids") if value][:10_000]
        if not ids:
            flash("Select at least one dead letter first.", "error")
            return back
        chosen, which = {"reason": None, "ids": ids}, f"{len(ids)} selected"
    else:
        chosen, which = {"reason": reason, "ids": None}, (f"all with reason “{reason}”" if reason else "all")
    api = get_api()
    try:
        if action == "redrive":
            result = api.redrive_dead_letters(**chosen)
            flash(f"Redriven: {result['redriven']} dead letters ({which}) sent back to be archived; "
                  f"{result['remaining']} left in the dead-letter queue. Any the consumer refuses again come back "
                  "with their reason.", "success")
        else:
            result = api.discard_dead_letters(**chosen)
            flash(f"Discarded: {result['discarded']} dead letters ({which}); {result['remaining']} left in the "
                  "dead-letter queue.", "success")
    except ApiError as error:
        flash(f"{action.capitalize()} failed: {error.message}", "error")
    return back
