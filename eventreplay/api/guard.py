"""The API's gate, in front of routing and body parsing: an oversized body is answered 413 and a
missing or wrong API key 401 before a byte of the body is read, so that a client without the key
cannot make the API buffer and parse megabytes (docs/api.md, "Limits").

A pure ASGI middleware: it sees the request head as the server parsed it and wraps `receive`, the
only way the body reaches the app. FastAPI's own `max_body_size` is not used: it checks only when
the body is read (after routing) and answers plain text when the app did not read it.
"""
from __future__ import annotations

import secrets

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_KEY_HEADER = "X-API-Key"

# The body of a refused request is never read: closing is the only way not to receive it, and it
# ends a client that would go on sending.
CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without Content-Length (chunked) grows past the limit.
    An HTTPException, so that FastAPI passes it on to the JSON error handler instead of turning it
    into its 400 "error parsing the body"."""

    def __init__(self, limit: int):
        super().__init__(413, too_large(limit), headers=CLOSE)


def too_large(limit: int) -> str:
    return f"request body too large: at most {limit} bytes (API_MAX_BODY_BYTES)"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_key: SecretStr | None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.get_secret_value().encode("utf-8") if api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _refusal(self, method: str, headers: Headers) -> JSONResponse | None:
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return _error(400, f"invalid Content-Length header {declared[:40]!r}")
            if length > self.max_body_bytes:
                return _error(413, too_large(self.max_body_bytes))
        if self.api_key is not None and method in MUTATING_METHODS and not self._key_matches(headers):
            return _error(401, f"missing or wrong {API_KEY_HEADER} header", {"WWW-Authenticate": API_KEY_HEADER})
        return None

    def _key_matches(self, headers: Headers) -> bool:
        sent = headers.get(API_KEY_HEADER)
        # the raw header bytes (Starlette decodes them as latin-1), compared in constant time
        return sent is not None and secrets.compare_digest(sent.encode("latin-1"), self.api_key)

    def _limited(self, receive: Receive) -> Receive:
        """`receive` that counts the body as it streams in. With a Content-Length the server already
        holds the body to it (checked above); a chunked body has no size until it has been read."""
        received = 0
        limit = self.max_body_bytes

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_within_limit


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # the shape of every API error (eventreplay.api.errors)
    return JSONResponse({"detail": detail}, status_code=status, headers={**CLOSE, **(headers or {})})
