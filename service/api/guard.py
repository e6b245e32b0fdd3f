"""The outer layer of every request: request id, API key, connection cap, request timeout, CORS.

One pure ASGI middleware, before any route runs:

- gives the request an id (the client's `X-Request-ID` when it is plain, else a new
  one), echoed in the response and named in every log line and 500 about it;
- with `STREAMUQ_API_KEYS` set, refuses a request without a valid key: 401 JSON on
  HTTP, the same answer to a WebSocket handshake (or close code 1008 where the
  server cannot send an HTTP answer); health, the demo page and the API docs stay
  open, `/metrics` too unless `STREAMUQ_METRICS_PUBLIC=false`;
- answers 503 `server_busy` past `STREAMUQ_MAX_CONNECTIONS` HTTP requests in flight and
  open WebSockets together (health probes aside), so idle sockets cannot pile up;
- cancels an HTTP request still running after `STREAMUQ_REQUEST_TIMEOUT_S` and
  answers 503 `request_timeout` (WebSockets are long-lived: not timed).

CORS is off unless `STREAMUQ_CORS_ORIGINS` names origins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.datastructures import Headers, QueryParams
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected

from service import security
from service.api.errors import error_response
from service.config import Settings
from service.errors import RequestTimeout, ServerBusy, StreamUQError, Unauthorized
from service.kserve_codec import HEADER_LENGTH

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Load balancers must see a saturated server as alive: probes never count against the limit.
_PROBES = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})


class Guard:
    """Request id, API key, connection cap and timeout for every HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = security.KeyRing(settings.api_keys)
        self.timeout_s = settings.request_timeout_s
        self.metrics_public = settings.metrics_public
        self.max_connections = settings.max_connections
        self.connections = 0  # HTTP requests in flight and open WebSockets (health probes aside)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _PLAIN_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        try:
            state["key_id"] = self._authenticate(scope, headers)
        except Unauthorized as exc:
            await self._refuse(scope, receive, send, exc, request_id)
            return
        counted = scope["path"] not in _PROBES
        if counted and self.connections >= self.max_connections:
            busy = ServerBusy(
                f"{self.connections} requests and WebSockets are open, the limit is {self.max_connections} "
                "(STREAMUQ_MAX_CONNECTIONS); retry shortly",
                retry_after=1,
            )
            await self._refuse(scope, receive, send, busy, request_id)
            return
        self.connections += counted
        try:
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send, request_id)
            else:
                await self._timed(scope, receive, send, request_id)
        finally:
            self.connections -= counted

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Run a WebSocket route; a bug in it closes the socket 1011 naming the request id."""
        try:
            await self.app(scope, receive, send)
        except (WebSocketDisconnect, ClientDisconnected):
            raise  # the client left: the server knows what to do with that
        except Exception:
            log.exception("unhandled error, request %s, on WebSocket %s", request_id, scope["path"])
            reason = f"internal error, request id {request_id}"
            with contextlib.suppress(Exception):  # the socket may be closed or never accepted
                await send({"type": "websocket.close", "code": INTERNAL_ERROR, "reason": reason})

    def _authenticate(self, scope: Scope, headers: Headers) -> str | None:
        """The caller's key id; None when keys are off or the path is open."""
        if not self.keys.enabled or security.is_open(scope["path"], metrics_public=self.metrics_public):
            return None
        websocket = scope["type"] == "websocket"
        return self.keys.identify(
            security.presented_key(headers, QueryParams(scope.get("query_string", b"")), websocket=websocket)
        )

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: StreamUQError, request_id: str
    ) -> None:
        headers = {REQUEST_ID_HEADER: request_id}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if scope["type"] == "http":
            response = error_response(Request(scope), exc.status_code, exc.code, exc.message, headers)
            await response(scope, receive, send)
            return
        # Every WebSocket route is under /v1: the /v1 error shape.
        body = {"error": {"code": exc.code, "message": exc.message}}
        response = JSONResponse(body, status_code=exc.status_code, headers=headers)
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:
            await websocket.close(POLICY_VIOLATION, exc.message[:120])

    async def _timed(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())
                message = {**message, "headers": [*message.get("headers", []), extra]}
            await send(message)

        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                await self.app(scope, receive, send_with_id)
        except TimeoutError:
            if not deadline.expired():
                raise  # a TimeoutError of the app's own: a bug, for the 500 handler
            log.warning(
                "request %s %s %s cancelled after %g s",
                request_id,
                scope["method"],
                scope["path"],
                self.timeout_s,
            )
            if started:
                return  # the answer is half sent; the connection ends with it
            exc = RequestTimeout(
                f"the request took longer than {self.timeout_s:g} s (STREAMUQ_REQUEST_TIMEOUT_S) and was "
                "cancelled; retry later or send smaller frames",
                retry_after=1,
            )
            headers = {"Retry-After": "1", REQUEST_ID_HEADER: request_id}
            response = error_response(Request(scope), exc.status_code, exc.code, exc.message, headers)
            await response(scope, receive, send)


def caller(conn: HTTPConnection) -> str | None:
    """The key id of the caller (None when keys are off): the owner of the streams it creates."""
    key: str | None = conn.scope.get("state", {}).get("key_id")
    return key


OwnerDep = Annotated[str | None, Depends(caller)]


def document_auth(app: FastAPI, settings: Settings) -> None:
    """With keys on, `/openapi.json` says which operations need `Authorization: Bearer` (and may 401)."""
    if not settings.api_keys:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by FastAPI after the first call; the edits below are idempotent
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key of STREAMUQ_API_KEYS",
        }
        for path, item in schema.get("paths", {}).items():
            if security.is_open(path, metrics_public=settings.metrics_public):
                continue
            error = (
                _V2_ERROR_SCHEMA if path.startswith("/v2") else {"$ref": "#/components/schemas/ErrorResponse"}
            )
            for operation in item.values():
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {})["401"] = {
                    "description": "missing or unknown API key",
                    "content": {"application/json": {"schema": error}},
                }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_V2_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def install(app: FastAPI, settings: Settings) -> None:
    """Guard every request; CORS outside it (so preflights need no key) when origins are configured."""
    app.add_middleware(Guard, settings=settings)
    document_auth(app, settings)
    if settings.api_keys:
        security.redact_server_logs()  # browsers put the key in the WebSocket URL, which uvicorn logs
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Content-Encoding",
                REQUEST_ID_HEADER,
                HEADER_LENGTH,
            ],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "X-Frame-Meta", HEADER_LENGTH],
        )
