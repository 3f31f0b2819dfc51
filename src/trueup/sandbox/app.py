"""The sandbox's ASGI app: routes, the API gateway (faults, sessions, daily limit), error bodies.

Every request under ``/services`` passes the gateway in this order, as a real org's edge would:

1. the fault plan (``FaultPlan.on_request``): delay, expire every session, drop the connection, or
   answer with a scripted status instead of handling the call;
2. for data calls (``/services/data/vXX.X/...``): the session check (401 ``INVALID_SESSION_ID``)
   and the daily API request allocation (403 ``REQUEST_LIMIT_EXCEEDED``), after which every
   response carries ``Sforce-Limit-Info: api-usage=USED/MAX``;
3. the route (handlers live in rest.py). A handler's ``ApiError`` becomes its status and error
   array; anything unexpected becomes a 500 ``UNKNOWN_EXCEPTION`` array, never a traceback page.

Each request is kept in ``SandboxState.requests`` and served at ``GET /__sandbox/requests``
(no session needed; ``DELETE`` clears it) so tests can assert what arrived.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trueup.sandbox import rest
from trueup.sandbox.auth import Auth
from trueup.sandbox.bulk2 import IngestJobs
from trueup.sandbox.errors import ApiError, not_found
from trueup.sandbox.faults import FaultPlan, HttpFault
from trueup.sandbox.ids import mint
from trueup.sandbox.org import Org

log = logging.getLogger("trueup.sandbox")

DATA_PATH = re.compile(r"^/services/data/v\d+\.\d+(/|$)")
INSPECTION_PREFIX = "/__sandbox"
DROP_EXTENSION = "trueup.drop"  # scope["extensions"] key server.py fills with a connection killer
LIMIT_HEADER = "Sforce-Limit-Info"
MAX_CURSORS = 100


@dataclass
class LoggedRequest:
    """One request as the sandbox saw it."""

    method: str
    path: str
    query: str
    at: str  # ISO 8601 UTC, when it arrived
    status: int | None = None  # None when the connection was dropped
    duration_ms: float = 0.0
    fault: str | None = None  # the injected fault, if any: "503", "delay", "drop", ...
    error: str | None = None  # the exception behind a 500

    def to_json(self) -> dict[str, Any]:
        """This entry as served at /__sandbox/requests."""
        return asdict(self)


@dataclass
class QueryCursor:
    """The rows of a query result still being paged through (``nextRecordsUrl``)."""

    sobject: str
    fields: tuple[str, ...]
    rows: list[dict[str, Any]]
    page_size: int


@dataclass
class SandboxState:
    """Everything one sandbox holds: the org, sessions, Bulk jobs, faults, limits and logs."""

    org: Org
    auth: Auth
    jobs: IngestJobs
    faults: FaultPlan = field(default_factory=FaultPlan.none)
    page_size: int = 2000
    api_limit: int = 15000
    api_used: int = 0
    requests: list[LoggedRequest] = field(default_factory=list)
    cursors: OrderedDict[str, QueryCursor] = field(default_factory=OrderedDict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    _cursor_count: int = 0

    def api_remaining(self) -> int:
        """Daily API requests left."""
        return max(self.api_limit - self.api_used, 0)

    def add_cursor(
        self, sobject: str, fields: tuple[str, ...], rows: list[dict[str, Any]], page_size: int
    ) -> str:
        """Keep a query result under a new locator id (``01g...``); the oldest ones lapse."""
        cursor = QueryCursor(sobject, fields, rows, page_size)
        self._cursor_count += 1
        locator = mint("01g", self._cursor_count)
        self.cursors[locator] = cursor
        while len(self.cursors) > MAX_CURSORS:
            self.cursors.popitem(last=False)
        return locator


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ApiError as Salesforce sends it."""
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        listed = allowed.replace(", ", ",")
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {listed}"
        return error_response(
            ApiError(405, "METHOD_NOT_ALLOWED", message), headers={"Allow": allowed}
        )
    if exc.status_code == 404:
        return error_response(not_found())
    return error_response(ApiError(exc.status_code, "UNKNOWN_EXCEPTION", str(exc.detail)))


def _fault_response(fault: HttpFault) -> Response:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    status = fault.status or 500
    if fault.body is None:
        return Response(status_code=status, headers=headers)
    if isinstance(fault.body, str):
        return Response(fault.body, status_code=status, headers=headers, media_type="text/plain")
    return JSONResponse(fault.body, status_code=status, headers=headers)


def _describe_fault(fault: HttpFault) -> str:
    parts = [str(fault.status)] if fault.status is not None else []
    parts += ["delay"] if fault.delay else []
    parts += ["drop"] if fault.drop else []
    parts += ["expire_session"] if fault.expire_session else []
    return ",".join(parts)


class _Gateway:
    """ASGI middleware: request log, faults, session check, daily limit, last-resort 500."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(INSPECTION_PREFIX):
            await self.app(scope, receive, send)
            return
        entry = LoggedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        clock = time.perf_counter()
        extra_headers: list[tuple[bytes, bytes]] = []
        started = False

        async def send_logged(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                entry.status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            await send(message)

        try:
            answer = await self._gate(scope, entry, extra_headers)
            if answer is _DROPPED:
                entry.status = None
                await _drop(scope)
            elif isinstance(answer, Response):
                await answer(scope, receive, send_logged)
            else:
                await self.app(scope, receive, send_logged)
        except ConnectionDropped:
            raise
        except Exception as exc:  # the boundary: a bug still answers in Salesforce's shape
            log.exception("sandbox: unexpected error on %s %s", entry.method, entry.path)
            entry.error = f"{type(exc).__name__}: {exc}"
            if started:
                raise
            error = ApiError(500, "UNKNOWN_EXCEPTION", f"An unexpected error occurred: {exc}")
            await error_response(error)(scope, receive, send_logged)
        finally:
            entry.duration_ms = round((time.perf_counter() - clock) * 1000, 3)
            self.state.requests.append(entry)

    async def _gate(
        self, scope: Scope, entry: LoggedRequest, extra_headers: list[tuple[bytes, bytes]]
    ) -> Response | object | None:
        """What to answer instead of routing (a Response or _DROPPED), or None to route."""
        state = self.state
        fault = state.faults.on_request(scope["method"], scope["path"])
        if fault is not None:
            entry.fault = _describe_fault(fault)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.expire_session:
                state.auth.revoke_all()
            if fault.drop:
                return _DROPPED
            if fault.status is not None:
                return _fault_response(fault)
        if not DATA_PATH.match(scope["path"]):
            return None
        authorization = _header(scope, b"authorization")
        try:
            state.auth.verify(authorization)
        except ApiError as exc:
            return error_response(exc)
        if state.api_used >= state.api_limit:
            usage = f"api-usage={state.api_used}/{state.api_limit}"
            error = ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return error_response(error, headers={LIMIT_HEADER: usage})
        state.api_used += 1
        usage = f"api-usage={state.api_used}/{state.api_limit}"
        extra_headers.append((LIMIT_HEADER.encode(), usage.encode()))
        return None


_DROPPED = object()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class ConnectionDropped(Exception):
    """Raised to the server when it offers no way to drop a connection silently."""


async def _drop(scope: Scope) -> None:
    """Close the connection without answering (server.py supplies how)."""
    drop: Callable[[], Awaitable[None]] | None = scope.get("extensions", {}).get(DROP_EXTENSION)
    if drop is None:
        raise ConnectionDropped("fault plan: drop the connection")
    await drop()


async def _requests_log(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    if request.method == "DELETE":
        state.requests.clear()
        return Response(status_code=204)
    return JSONResponse([entry.to_json() for entry in state.requests])


async def _fault_list(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    return JSONResponse(state.faults.describe())


def create_app(state: SandboxState) -> Starlette:
    """The ASGI app serving ``state``."""
    routes: list[BaseRoute] = [
        Route("/__sandbox/requests", _requests_log, methods=["GET", "DELETE"]),
        Route("/__sandbox/faults", _fault_list, methods=["GET"]),
        *rest.routes(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Gateway, state=state)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.router.redirect_slashes = False
    app.state.sandbox = state
    return app
