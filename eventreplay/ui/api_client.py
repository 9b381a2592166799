"""The UI's only way to the archive: the Replay API over HTTP (docs/api.md).

The UI never opens the store or the broker itself, as in the prototype's sequence diagram. The API
key is added here, on the server, so it never reaches a template or the browser. The client itself
(requests, timeouts, retries, `ApiError`) lives in eventreplay/client/replay_api.py, shared with the
operator CLI; this module is the Flask glue: one client per app context, closed in teardown.
"""
from __future__ import annotations

from flask import current_app, g

from eventreplay.client.replay_api import ApiError, ReplayApiClient

__all__ = ["ApiError", "ReplayApiClient", "close_api", "get_api", "init_app"]


# -- one client per app context, closed in teardown (flaskr's get_db/close_db pattern) -----------
def get_api() -> ReplayApiClient:
    if "api" not in g:
        g.api = ReplayApiClient(
            current_app.config["REPLAY_API_URL"],
            current_app.extensions.get("replay_api_key"),
        )
    return g.api


def close_api(exception: BaseException | None = None) -> None:
    api = g.pop("api", None)
    if api is not None:
        api.close()


def init_app(app) -> None:
    app.teardown_appcontext(close_api)
