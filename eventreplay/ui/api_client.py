"""The UI's only way to the archive: the Replay API over HTTP (docs/api.md).

The UI never opens the store or the broker itself, as in the prototype's sequence diagram. The API
key is added here, on the server, so it never reaches a template or the browser. Every failure
becomes an `ApiError` with a message an operator can read: pages show it instead of a traceback.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from flask import current_app, g

# Short timeouts: a page must not hang because the API does. Reads are quick; starting a replay
# only creates a job (202), so the same budget fits every call.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class ApiError(Exception):
    """The API answered with an error, or could not be reached (status None), or the request could
    not be encoded at all (422, like the API's answer to a request it cannot accept)."""

    def __init__(self, message: str, status: int | None = None, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        # field errors of a 422: [{"field": "...", "message": "..."}]
        self.errors = errors or []

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def page_status(self) -> int:
        """The UI's status for a page whose main content this error left out: the API's own 404 /
        409 / 422 pass through; an unreachable or failing API is 502 Bad Gateway (the UI is a
        gateway to it). Every page and the error handler answer the same way."""
        return self.status if self.status in (404, 409, 422) else 502

    def field_errors(self) -> dict[str, list[str]]:
        """Field name -> messages. The API may name a field by its path ("body.limit"); the form
        knows the last part only."""
        found: dict[str, list[str]] = {}
        for item in self.errors:
            field = str(item.get("field") or "").rsplit(".", 1)[-1]
            if field:
                found.setdefault(field, []).append(str(item.get("message") or "invalid"))
        return found


class ReplayApiClient:
    def __init__(self, base_url: str, api_key: str | None = None):
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    # -- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs) -> httpx.Response:
        try:
            request = self._http.build_request(method, path, **kwargs)
        except (ValueError, TypeError, RecursionError) as error:
            # a value JSON cannot carry (inf, NaN) or nested beyond reach: nothing was sent; the
            # request is the problem, as with the API's own 422
            text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise ApiError(f"The request could not be sent to the Replay API: it holds a value JSON cannot "
                           f"carry ({text}).", 422) from None
        try:
            response = self._http.send(request)
        except httpx.TimeoutException:
            raise ApiError(f"The Replay API at {self.base_url} did not answer in time.") from None
        except httpx.HTTPError as error:
            raise ApiError(
                f"The Replay API at {self.base_url} is unreachable ({type(error).__name__}). "
                "Is it running? Start it with: ./run run_replay_api"
            ) from None
        if response.status_code not in ok:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"The Replay API answered {path} with something that is not JSON.", response.status_code) from None

    # -- replays -------------------------------------------------------------------------------
    def start_replay(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/replay", json=request, ok=(200, 201, 202))

    def dry_run(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/replay", json={**request, "dry_run": True}, ok=(200,))

    def list_replays(self, limit: int | None = None, state: str | None = None) -> list[dict[str, Any]]:
        params = {key: value for key, value in (("limit", limit), ("state", state)) if value is not None}
        return self._json("GET", "/replays", params=params)

    def get_replay(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/replays/{_segment(job_id)}")

    def cancel_replay(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/replays/{_segment(job_id)}/cancel")

    def resume_replay(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/replays/{_segment(job_id)}/resume", ok=(200, 202))

    # -- browsing ------------------------------------------------------------------------------
    def event_types(self) -> list[dict[str, Any]]:
        return self._json("GET", "/event-types")

    def events(self, *, event_types=(), since=None, until=None, match=None, after=None, limit=50) -> dict[str, Any]:
        """`match`: a JSON object as text (equality on top-level payload fields)."""
        params: list[tuple[str, Any]] = [("event_type", t) for t in event_types]
        params += [(k, v) for k, v in (("since", since), ("until", until), ("match", match), ("after", after))
                   if v not in (None, "")]
        params.append(("limit", limit))
        return self._json("GET", "/events", params=params)

    def archive(self) -> dict[str, Any]:
        return self._json("GET", "/archive")

    def get_event(self, event_id: str) -> dict[str, Any]:
        return self._json("GET", f"/events/{_segment(event_id)}")

    # -- operations ----------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """/ready answers 503 with the reasons when a dependency is down: that is data, not an error."""
        response = self._request("GET", "/ready", ok=(200, 503))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict) and "detail" in body and "store" not in body:
            # a 503 in the error shape: keep the reason for both parts
            body = {"store": body.get("detail"), "broker": body.get("detail")}
        return body if isinstance(body, dict) else {}


def _segment(value: str) -> str:
    # ids come from URLs the user can edit: quoted, one can never change the API path ("../ready")
    return quote(str(value), safe="")


def _error_from(response: httpx.Response) -> ApiError:
    detail: Any = None
    errors: list[dict] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        errors = body.get("errors") or []
        if isinstance(detail, list):  # FastAPI's own validation shape: [{"loc": [...], "msg": ...}]
            errors = errors or [
                {"field": ".".join(str(p) for p in item.get("loc", [])), "message": item.get("msg", "invalid")}
                for item in detail if isinstance(item, dict)
            ]
            detail = "; ".join(f"{e['field'].rsplit('.', 1)[-1]}: {e['message']}" for e in errors) or None
    if not isinstance(detail, str) or not detail:
        detail = response.reason_phrase or "error"
    messages = {
        401: "The Replay API refused the request: the UI's API key (REPLAY_API_KEY) is missing or wrong.",
        503: f"The Replay API cannot serve now: {detail}",
    }
    return ApiError(messages.get(response.status_code, detail), response.status_code, errors)


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
