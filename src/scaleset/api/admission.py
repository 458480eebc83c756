"""What the server lets in: request bodies up to a size, requests in flight up to a number.

One pure ASGI middleware (``Admission``), outermost, so that a refused request
costs the server almost nothing (Starlette's ``BaseHTTPMiddleware`` would
add a task and a stream per request):

* a ``Content-Length`` above ``Limits.max_request_bytes`` is answered 413
  ``RequestEntityTooLarge`` before one byte of the body is read; a chunked
  body is counted as it arrives and cut at the limit, so nothing larger is
  ever parsed or stored; a body that has not arrived ``BODY_SECONDS`` after the
  request began is a 408 (a trickling client would hold its place for ever);
* beyond ``Limits.max_requests_in_flight`` requests being served, a new one
  is answered 429 ``TooManyRequests`` with ``Retry-After`` at once, as ARM
  throttles: the Azure SDK and az retry after that many seconds, and the
  requests admitted keep a bounded latency instead of all queueing.
  POST and PATCH, which the Azure SDK does not resend on a 429, first wait up
  to ``WAIT_SECONDS`` for a place (first come, first served).
  ``/healthz`` is never shed, nor the requests the server sends itself
  (a template deployment's resource PUTs: the work of an admitted request);
* an event stream (``…/events?follow=true``) stays open as long as its
  client listens, so it holds no in-flight place: streams have their own
  bound, ``Limits.max_event_streams``, with the same 429 beyond it.

Admission also notes each read answered in ``Vitals`` (``api/vitals.py``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scaleset.api import envelope
from scaleset.api.vitals import Vitals
from scaleset.reconcile.settings import Limits

INTERNAL = "scaleset.internal"
"""Scope key marking a request the server sends itself; no HTTP client can set it."""

NEVER_SHED = frozenset({"/healthz", "/metrics"})  # watching an overloaded server matters most
RETRY_AFTER_SECONDS = 1
NOT_RESENT_BY_SDKS = frozenset({"POST", "PATCH"})
"""Methods azure-core's retry policy does not resend on 429 (its method allow-list):
rather than refuse them at once, they wait ``WAIT_SECONDS`` for a place."""
WAIT_SECONDS = 2.0
"""How long a throttled client waits: about the time the requests ahead of it take."""

BODY_SECONDS = 30.0
"""How long a request's body may take to arrive."""

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_CODES = {408: "RequestTimeout", 413: "RequestEntityTooLarge"}


class BodyTooLarge(HTTPException):
    """A body passed the limit while it was read; rendered as ARM's 413."""

    def __init__(self, limit: int, size: str) -> None:
        super().__init__(413, too_large_message(limit, size))


class BodySlow(HTTPException):
    """The body did not arrive in time; rendered as a 408."""

    def __init__(self) -> None:
        super().__init__(408, f"The request body did not arrive within {BODY_SECONDS:g} s of "
                              "the request; send it at once (a body is at most 4 MiB).")


def too_large_message(limit: int, size: str) -> str:
    """The 413's message: the limit, the size seen and the fix."""
    return (f"The request body is {size}, larger than this server's limit of {limit} bytes "
            f"(4 MiB by default, as ARM's); send a smaller body (split the change into "
            f"several requests or move large content such as images to a source URI).")


def internal(app: ASGIApp) -> ASGIApp:
    """``app`` for the server's own requests (in-process ASGI): never shed."""

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, INTERNAL: True}, receive, send)

    return marked


class Admission:
    """The body-size and in-flight limits (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits, vitals: Vitals) -> None:
        self.app = app
        self.limits = limits
        self.vitals = vitals
        self.in_flight = 0
        self.streams = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_request_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, "RequestEntityTooLarge",
                          too_large_message(limit, f"{declared} bytes (Content-Length)"),
                          {"Connection": "close"})  # the unread body cannot be skipped
            return
        if is_event_stream(scope):
            await self._stream(scope, receive, send)
            return
        shed = scope["path"] not in NEVER_SHED and not scope.get(INTERNAL)
        if shed and not await self._admit(
                WAIT_SECONDS if scope["method"] in NOT_RESENT_BY_SDKS else 0.0):
            await self._throttle(scope, send)
            return
        try:
            await self._serve(scope, _counted(receive, limit), send)
        finally:
            if shed:
                self._release()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An event stream holds no in-flight place (it stays open): it counts against
        ``max_event_streams`` instead."""
        limit = self.limits.max_event_streams
        if self.streams >= limit:
            await _refuse(send, 429, "TooManyRequests",
                          f"{limit} event streams are open, the most this server keeps "
                          f"(--max-event-streams); retry after {RETRY_AFTER_SECONDS} s, or "
                          "close another stream", {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return
        self.streams += 1
        try:
            await self._serve(scope, _counted(receive, self.limits.max_request_bytes), send)
        finally:
            self.streams -= 1

    async def _admit(self, wait: float) -> bool:
        """Take an in-flight place, waiting up to ``wait`` seconds for one; False if none."""
        if self.in_flight < self.limits.max_requests_in_flight and not self._waiting:
            self.in_flight += 1
            return True
        if wait <= 0:
            return False
        place = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        try:
            await asyncio.wait_for(place, wait)
            return True
        except TimeoutError:
            # Handed a place just as the wait ended: it is ours (``_release`` counted it).
            return place.done() and not place.cancelled()
        finally:
            if place in self._waiting:
                self._waiting.remove(place)

    def _release(self) -> None:
        """Give the place to the longest waiter, else free it."""
        while self._waiting:
            place = self._waiting.popleft()
            if not place.done():
                place.set_result(None)  # the place changes hands: in_flight stays
                return
        self.in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        read = scope["method"] in _READS

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if read and message["status"] < 500:
                    self.vitals.read_ok_at = time.monotonic()
                elif not read and message["status"] < 400:
                    self.vitals.write_ok_at = time.monotonic()
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except (BodyTooLarge, BodySlow) as exc:  # read outside a route (nothing rendered it)
            if started:
                raise
            await _refuse(send, exc.status_code, _CODES[exc.status_code], str(exc.detail),
                          {"Connection": "close"})

    async def _throttle(self, scope: Scope, send: Send) -> None:
        limit = self.limits.max_requests_in_flight
        kind = "reads" if scope["method"] in _READS else "writes"
        await _refuse(send, 429, "TooManyRequests", (
            f"The request is being throttled: this server is serving {self.in_flight} "
            f"requests at once, its limit (--max-requests-in-flight {limit}). Retry after "
            f"{RETRY_AFTER_SECONDS} second(s), as the Retry-After header says; the Azure SDK "
            "and az do so on their own."),
            {"Retry-After": str(RETRY_AFTER_SECONDS),
             # azure-core prefers this to Retry-After: spread over a few seconds, the
             # clients throttled together do not all come back in the same instant.
             "retry-after-ms": str(random.randint(RETRY_AFTER_SECONDS * 1000,
                                                  RETRY_AFTER_SECONDS * 3000)),
             f"x-ms-ratelimit-remaining-subscription-{kind}": "0"})


def is_event_stream(scope: Scope) -> bool:
    """Whether a request asks for a Server-Sent Events stream (``…/events?follow=true``)."""
    return (scope["method"] == "GET" and str(scope["path"]).endswith("/events")
            and b"follow=true" in scope.get("query_string", b"").lower())


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server's HTTP parser refuses it before we see it
    return None


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``BodyTooLarge`` once the body passes ``limit`` bytes, and
    ``BodySlow`` when the body has not arrived ``BODY_SECONDS`` after its request began:
    a client trickling a body would otherwise hold an in-flight place for ever (a few of
    them would lock every other client out)."""
    seen = 0
    complete = False
    deadline = time.monotonic() + BODY_SECONDS

    async def counting() -> Message:
        nonlocal seen, complete
        if complete:  # after the body: a wait for the disconnect, which may be long
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise BodySlow() from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            complete = not message.get("more_body", False)
            if seen > limit:
                raise BodyTooLarge(limit, f"more than {limit} bytes (cut while it was read)")
        return message

    return counting


async def _refuse(send: Send, status: int, code: str, message: str,
                  headers: dict[str, str]) -> None:
    response = envelope.response(status, code, message, headers=headers)
    await send({"type": "http.response.start", "status": status,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
