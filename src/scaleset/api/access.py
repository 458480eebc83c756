"""The access log and the request metrics: one line and one count per request answered.

Two pure ASGI layers share a ``RequestNote`` that the outer one puts in
the request's scope (a scope copied further in still holds the same note):

* ``RequestTelemetry``, outermost, times the request, sees its status and, for
  an error, the ARM error code and target of the body; when the response is
  done it counts ``scaleset_api_requests_total{method,route,status}``, observes
  ``scaleset_api_request_duration_seconds`` and logs one line on
  ``scaleset.api.access``: a refused request (4xx) at INFO, a 5xx at ERROR with
  its traceback, anything else at DEBUG;
* ``serve_noting_route``, innermost (``paths.ArmPathMiddleware`` calls it), writes the
  matched route's template (``/subscriptions/{subscription}/...``) into the note when
  the response starts, so metrics are labelled by route, never by raw path.

The line names the method and path only (never the query string, headers or
body, where codes, secrets and tokens travel), the status, the ARM error code
and target, and who called when the auth dependency learnt it (``note_caller``:
the role, and a service principal's appId): never the token.

Each 5xx line carries its traceback, once: an exception no handler took passes
through ``RequestTelemetry``, which logs it (``envelope`` and uvicorn are told
not to log it again, ``logged_here``); one a handler answered 5xx for (the
database failed) is handed to the note (``keep_exception``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scaleset.api.vitals import caused_by_full_disk
from scaleset.telemetry.logs import fields
from scaleset.telemetry.metrics import Metrics

log = logging.getLogger("scaleset.api.access")

NOTE = "scaleset.request"
"""Scope key of the request's ``RequestNote``."""
UNROUTED = "(unrouted)"
"""The route label of a request no route took (refused before routing, or no match)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_ERROR_BODY = 64 * 1024
"""How much of an error response is read for its ARM code; ARM error bodies are small."""


@dataclass
class RequestNote:
    """What the layers of one request learn about it, for its log line and metrics."""

    route: str | None = None
    role: str | None = None
    principal: str | None = None
    exception: BaseException | None = None
    """What a handler turned into a 5xx: logged with that request's line."""
    logged_exception: bool = False


def note_of(request: Request) -> RequestNote | None:
    found = request.scope.get(NOTE)
    return found if isinstance(found, RequestNote) else None


def note_caller(request: Request, *, role: str, principal: str | None = None) -> None:
    """Record who the request's token speaks for (never the token itself)."""
    note = note_of(request)
    if note is not None:
        note.role = role
        note.principal = principal or note.principal


def keep_exception(request: Request, exc: BaseException) -> bool:
    """Let the request's log line carry ``exc``'s traceback (a handler answering 5xx for
    it); False when there is no line to carry it (the caller then logs it itself)."""
    note = note_of(request)
    if note is None:
        return False
    note.exception = exc
    return True


def logged_here(request: Request) -> bool:
    """Whether this request's unhandled exception was already logged with its traceback."""
    note = note_of(request)
    return note is not None and note.logged_exception


async def serve_noting_route(app: ASGIApp, scope: Scope, receive: Receive, send: Send
                             ) -> None:
    """Run ``app`` (the routing), writing the template of the route that answered into the
    request's note when the response starts (or when ``app`` ends without one). Called
    innermost, by ``paths.ArmPathMiddleware``: the router records the route in the scope
    it is given, which may be a copy of the one ``RequestTelemetry`` saw."""
    note = scope.get(NOTE)
    if scope["type"] != "http" or not isinstance(note, RequestNote):
        await app(scope, receive, send)
        return

    async def noting(message: Message) -> None:
        if message["type"] == "http.response.start" and note.route is None:
            note.route = _template(scope)
        await send(message)

    try:
        await app(scope, receive, noting)
    finally:
        if note.route is None:
            note.route = _template(scope)


def _template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


class RequestTelemetry:
    """Outermost: one log line and one count per request (``metrics`` None: log only)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # Each (method, route, status)'s counter and histogram series, as ``labels`` gives
        # them: looked up once, not per request (``labels`` validates and locks). Bounded
        # as the metrics' own series are: routes are templates, never raw paths.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        note = RequestNote()
        scope[NOTE] = note
        status = 0
        content_type = ""
        error_body = bytearray()

        async def watching(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for key, value in message.get("headers", ()):
                    if key.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body" and status >= 400 \
                    and len(error_body) < MAX_ERROR_BODY:
                error_body.extend(message.get("body", b"")[:MAX_ERROR_BODY - len(error_body)])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as exc:
            # No handler took it: Starlette's outermost layer answers 500 (507 for a full
            # disk, as envelope renders it) once this re-raises.
            note.logged_exception = True
            self._done(scope, note, status or (507 if caused_by_full_disk(exc) else 500),
                       "", b"", began, exc)
            raise
        self._done(scope, note, status, content_type, bytes(error_body), began, None)

    def _done(self, scope: Scope, note: RequestNote, status: int, content_type: str,
              body: bytes, began: float, exc: BaseException | None) -> None:
        seconds = time.perf_counter() - began
        method = str(scope.get("method", "")).upper()
        method = method if method in METHODS else "OTHER"
        route = note.route or UNROUTED
        if self.metrics is not None:
            series = self._series.get((method, route, status))
            if series is None:
                series = self._series[(method, route, status)] = (
                    self.metrics.api_requests.labels(method=method, route=route,
                                                     status=str(status)),
                    self.metrics.api_request_duration.labels(method=method, route=route))
            series[0].inc()
            series[1].observe(seconds)
        code, target = _error_of(body, content_type) if status >= 400 else (None, None)
        level = logging.ERROR if status >= 500 else logging.INFO if status >= 400 \
            else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        if exc is None and status >= 500:
            exc = note.exception
        path = str(scope.get("path", ""))
        log.log(level, "%s %s %d%s", method, path, status, f" {code}" if code else "",
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
                extra=fields(method=method, path=path, route=route, status=status,
                             error_code=code, error_target=target, role=note.role,
                             principal=note.principal, duration_ms=round(seconds * 1000, 1),
                             client=_client(scope)))


def _error_of(body: bytes, content_type: str) -> tuple[str | None, str | None]:
    """The ARM error code and target of an error body, or an OAuth error's code (the
    message may echo input: it is not logged)."""
    if "json" not in content_type or not body:
        return None, None
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None, None
    if isinstance(error, str):  # the sign-in endpoints answer as OAuth does
        return error[:128], None
    if not isinstance(error, dict):
        return None, None
    code, target = error.get("code"), error.get("target")
    return (str(code)[:128] if isinstance(code, str) else None,
            str(target)[:256] if isinstance(target, str) else None)


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None
