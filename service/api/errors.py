"""Errors as JSON, from one place: `{"error": {"code", "message"}}` on /v1, `{"error": "..."}` on /v2."""

from __future__ import annotations

import logging
import math
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.errors import StreamUQError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error body in the shape of the request's protocol."""
    body: object = (
        {"error": message}
        if request.url.path.startswith("/v2")
        else {"error": {"code": code, "message": message}}
    )
    return JSONResponse(body, status_code=status, headers=headers)


async def streamuq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StreamUQError)
    headers = None
    retry_after = exc.retry_after
    if retry_after is None and exc.status_code in (429, 503):
        retry_after = 1.0  # every "come back later" says when
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return error_response(request, exc.status_code, exc.code, exc.message, headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')} (got {err.get('input')!r})")
    return error_response(request, 422, "invalid_parameter", "; ".join(parts) or "invalid request")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(request, exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The request id ties the client's 500 to the traceback in the log (set by service.api.guard).
    request_id = request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex[:16]
    log.exception(
        "unhandled error, request %s, on %s %s", request_id, request.method, request.url.path, exc_info=exc
    )
    message = f"internal error ({type(exc).__name__}), request id {request_id}; report it with this id"
    return error_response(request, 500, "internal_error", message, {"X-Request-ID": request_id})


def install(app: FastAPI) -> None:
    app.add_exception_handler(StreamUQError, streamuq_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
