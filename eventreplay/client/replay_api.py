"""A client of the Replay API over HTTP (docs/api.md), shared by the UI and the operator CLI.

Built on a `requests.Session`: one pool of kept-alive connections, short timeouts, and retries of
idempotent calls only (see `RETRY_POLICY`). Every failure becomes an `ApiError` with a message an
operator can read: pages and the CLI show it instead of a traceback. No Flask here: the UI's glue
(one client per request context) is eventreplay/ui/api_client.py.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

# (connect, read) seconds. A page must not hang because the API does. Reads are quick; starting a
# replay only creates a job (202), so the same budget fits every call.
TIMEOUT = (3.0, 10.0)

# Methods that may be sent twice without harm. A POST (start a replay, cancel, redrive...) is sent
# once: a second attempt could start a second replay.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
# What a restart or a proxy in front of the API answers while it is briefly away.
RETRY_STATUSES = (502, 503, 504)


class _IdempotentRetry(Retry):
    """urllib3 retries connect errors whatever the method (the request was not sent). We promise
    more: a non-idempotent call is never attempted twice, so it gives up at its first failure."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if method is not None and method.upper() not in IDEMPOTENT_METHODS:
            cause = error or Exception(f"{method} is not retried")
            # the shape urllib3 raises when retries run out, so requests maps it as usual
            raise MaxRetryError(_pool, url, cause) from error  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


def retry_policy(statuses: tuple[int, ...] = RETRY_STATUSES) -> Retry:
    """Up to 3 retries of a GET/HEAD: a refused connection once (the API restarting; a host that
    does not answer at all costs the connect timeout per attempt, so only one more), 502/503/504
    up to 3 times. Backoff 0, 0.2, 0.4 s (urllib3 2: factor * 2**(n-1), the first retry at once):
    at most ~0.6 s of waiting. A server's Retry-After is not obeyed: it could hold a page for
    minutes. After the last retry the error response itself is returned, so its message shows."""
    return _IdempotentRetry(
        total=3, connect=1, read=0, other=0, status=3, redirect=0,
        allowed_methods=IDEMPOTENT_METHODS, status_forcelist=statuses,
        backoff_factor=0.2, backoff_max=1.0,
        raise_on_status=False, raise_on_redirect=False, respect_retry_after_header=False,
    )


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
        self.base_url = base_url.rstrip("/")
        self._http = requests.Session()
        self._http.headers["Accept"] = "application/json"
        if api_key:
            self._http.headers["X-API-Key"] = api_key
        retrying = HTTPAdapter(max_retries=retry_policy())
        self._http.mount("http://", retrying)
        self._http.mount("https://", retrying)
        # /ready answers 503 on purpose, with the reasons (see ready()): retrying it would only
        # delay that answer. requests picks the adapter with the longest matching prefix.
        self._http.mount(f"{self.base_url}/ready", HTTPAdapter(max_retries=retry_policy(statuses=(502, 504))))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ReplayApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        try:
            prepared = self._http.prepare_request(requests.Request(method, self.base_url + path, **kwargs))
        except (requests.exceptions.InvalidJSONError, ValueError, TypeError, RecursionError) as error:
            # a value JSON cannot carry (inf, NaN) or nested beyond reach: nothing was sent; the
            # request is the problem, as with the API's own 422
            text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise ApiError(f"The request could not be sent to the Replay API: it holds a value JSON cannot "
                           f"carry ({text}).", 422) from None
        # what Session.request would add (proxy variables, CA bundle) for a prepared request
        settings = self._http.merge_environment_settings(prepared.url, {}, None, None, None)
        try:
            response = self._http.send(prepared, timeout=TIMEOUT, **settings)
        except requests.Timeout:
            raise ApiError(f"The Replay API at {self.base_url} did not answer in time.") from None
        except requests.RequestException as error:
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

    def ingest(self) -> dict[str, Any]:
        """Consumer state, queue depths, lag and events per minute over the last hour."""
        return self._json("GET", "/ingest")

    # -- dead letters --------------------------------------------------------------------------
    def dead_letters(self, reason: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """{"total", "by_reason": [{"reason", "count"}], "items": [...]}: the DLQ, not consumed."""
        params = {key: value for key, value in (("reason", reason), ("limit", limit)) if value is not None}
        return self._json("GET", "/dead-letters", params=params)

    def redrive_dead_letters(self, reason: str | None = None, ids: list[str] | None = None) -> dict[str, Any]:
        """Both None: every dead letter. {"redriven": int, "remaining": int}."""
        return self._json("POST", "/dead-letters/redrive", json={"reason": reason, "ids": ids})

    def discard_dead_letters(self, reason: str | None = None, ids: list[str] | None = None) -> dict[str, Any]:
        """Both None: every dead letter. {"discarded": int, "remaining": int}."""
        return self._json("POST", "/dead-letters/discard", json={"reason": reason, "ids": ids})

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


def _error_from(response: requests.Response) -> ApiError:
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
        detail = response.reason or "error"
    messages = {
        401: "The Replay API refused the request: the API key (REPLAY_API_KEY) is missing or wrong.",
        503: f"The Replay API cannot serve now: {detail}",
    }
    return ApiError(messages.get(response.status_code, detail), response.status_code, errors)
