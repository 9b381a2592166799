"""Every error the API answers is JSON `{"detail": "readable message"}` (docs/api.md); a 422 adds
`errors: [{field, message}]`. Unexpected errors are logged with their traceback and answered with a
plain 500 that never includes it."""
from __future__ import annotations

import logging

import pika.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventreplay.replay.jobs import JobNotFound, JobStateConflict
from eventreplay.replay.targets import TargetNotFound, TargetRefused
from eventreplay.store.base import PersistenceError

log = logging.getLogger(__name__)

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    ConnectionError,
)


def _field(loc: tuple | list) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if rest else where
    return ".".join(parts) or "request"


def _message(error: dict) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON ({reason})" if reason else "the request body is not valid JSON"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _json(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": "body" if e.get("type") == "json_invalid" else _field(e.get("loc", ())), "message": _message(e)}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
    return _json(422, f"invalid request: {summary}", errors=errors)


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body it cannot even decode (not UTF-8, nested too deeply): bad input
        # like any other, so the same 422 shape.
        message = "the request body is not valid JSON (not UTF-8, or nested too deeply)"
        return _json(422, f"invalid request: body: {message}", errors=[{"field": "body", "message": message}])
    response = _json(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def not_found(_request: Request, exc: Exception) -> JSONResponse:
    return _json(404, str(exc))


async def conflict(_request: Request, exc: Exception) -> JSONResponse:
    return _json(409, str(exc))


async def store_unavailable(_request: Request, exc: PersistenceError) -> JSONResponse:
    log.warning("event store error: %s", exc)
    return _json(503, f"event store unavailable: {exc}")


async def broker_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("broker error: %r", exc)
    reason = str(exc) or exc.__class__.__name__
    return _json(503, f"broker unavailable: {reason}")


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal error; the API log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(JobNotFound, not_found)
    app.add_exception_handler(TargetNotFound, not_found)
    app.add_exception_handler(JobStateConflict, conflict)
    app.add_exception_handler(TargetRefused, conflict)
    app.add_exception_handler(PersistenceError, store_unavailable)
    for error in BROKER_ERRORS:
        app.add_exception_handler(error, broker_unavailable)
    app.add_exception_handler(Exception, unexpected)
