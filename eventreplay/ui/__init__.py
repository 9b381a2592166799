"""The replay management UI: a Flask app that talks to the Replay API over HTTP only.

`create_app()` is the factory (as in Flask's tutorial); one blueprint per page: overview (with the
replay form, at `/`), replays, events. Settings come from eventreplay.settings; tests pass overrides.
"""
from __future__ import annotations

import secrets

from flask import Flask, jsonify, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect

from eventreplay.settings import get_settings
from eventreplay.ui import api_client
from eventreplay.ui.api_client import ApiError
from eventreplay.ui.session import SchemeAwareSessionInterface
from eventreplay.ui.view_helpers import wants_json

csrf = CSRFProtect()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.session_interface = SchemeAwareSessionInterface()  # Secure cookie over HTTPS
    settings = get_settings()
    secret = settings.ui_secret_key.get_secret_value() if settings.ui_secret_key else None
    api_key = settings.replay_api_key.get_secret_value() if settings.replay_api_key else None
    app.config.from_mapping(
        # Unset: a random key per process. Sessions (and so CSRF tokens) then end on restart,
        # which is safer than a fixed default key anyone could read in the source.
        SECRET_KEY=secret or secrets.token_hex(32),
        REPLAY_API_URL=settings.replay_api_url,
        REPLAY_API_KEY=api_key,
        # The console stays open for hours: a token bound to the session, not to a one-hour clock,
        # keeps the cancel buttons working. The session cookie still ends with the browser.
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        POLL_INTERVAL_MS=1000,
    )
    if test_config:
        app.config.from_mapping(test_config)
    # Templates can read app.config (Flask's `config` global): the key moves out of it, to where
    # only api_client looks.
    app.extensions["replay_api_key"] = app.config.pop("REPLAY_API_KEY", None)

    csrf.init_app(app)
    api_client.init_app(app)

    from eventreplay.ui import dead_letters, events, overview, replays

    app.register_blueprint(overview.bp)
    app.register_blueprint(replays.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(dead_letters.bp)
    # browsers ask for /favicon.ico before (or without) reading the page's <link rel="icon">
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))
    _register_helpers(app)
    _register_error_pages(app)
    app.after_request(_security_headers)
    return app


# Everything the pages use is served by the app itself: the policy can forbid any other origin,
# inline script and inline style, which blunts an injection even if some escaping were missed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")  # live figures, never cached
    return response


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        message = ("This form was refused: its security token is missing or no longer valid. "
                   "Reload the page and submit the form again.")
        if wants_json():
            return jsonify(error=message), 400
        return render_template("error.html", title="Form refused", message=message, status=400), 400

    @app.errorhandler(ApiError)
    def api_failed(error: ApiError):
        # a page that needed the API and could not get it: a readable page, never a traceback
        status = error.page_status
        if wants_json():
            return jsonify(error=error.message), status
        title = "Not found" if error.status == 404 else "Replay API problem"
        return render_template("error.html", title=title, message=error.message, status=status), status

    @app.errorhandler(400)
    def bad_request(error):
        if wants_json():
            return jsonify(error="Bad request"), 400
        return render_template("error.html", title="Bad request", message="The request could not be understood.", status=400), 400

    @app.errorhandler(404)
    def not_found(error):
        if wants_json():
            return jsonify(error="Not found"), 404
        return render_template("error.html", title="Not found", message="There is no page at this address.", status=404), 404

    @app.errorhandler(405)
    def not_allowed(error):
        return render_template("error.html", title="Not allowed", message="This address does not accept that method.", status=405), 405

    @app.errorhandler(500)
    def internal(error):
        app.logger.exception("unexpected error")  # the details go to the log, not to the page
        return render_template("error.html", title="Something went wrong",
                               message="The UI hit an unexpected error; the details are in its log.", status=500), 500


def _register_helpers(app: Flask) -> None:
    from eventreplay.ui import view_helpers

    app.jinja_env.filters.update(
        when=view_helpers.format_when,
        duration=view_helpers.format_duration,
        number=view_helpers.format_number,
    )

    @app.context_processor
    def globals_for_templates():
        # only what templates need; the API key is deliberately not here
        return {"api_url": app.config["REPLAY_API_URL"], "poll_ms": app.config["POLL_INTERVAL_MS"]}
