"""The prober's network client: one HTTP/1.1 GET or one TCP connect, on raw asyncio transports.

``Prober`` (``probes.py``) decides when to probe and what a result means; this
module only talks to the instance, as cheaply as it can be done in Python:

* ``tcp_connect`` opens a connection and closes it at once (a Tcp probe is a
  connect by nature: nothing is kept).
* ``HttpChannel`` sends GETs to one instance's port over at most one kept
  HTTP/1.1 connection. The framing is h11's (requests built, responses parsed);
  the transport is a bare ``asyncio.Protocol``, so an attempt on a kept
  connection costs one write, one read and h11's parsing.

Why a kept connection still sees a dead instance at once: the kernel closes a
process's sockets when it dies, so the peer's FIN or RST reaches the idle
connection while it waits (``connection_lost``/``eof_received`` mark it). The
next attempt sees that and opens a new connection, which is refused: a failed
probe, as it was with a connection per probe. Should the close arrive just as a
request goes out (the instance's server dropped an idle connection, or the
process died that instant), a kept connection that ends before any byte of the
response is opened again once, in the same attempt; a refused connect then is
the failure. A fresh connection is never retried.

A connection is kept only when the exchange ended cleanly and both sides may
go on (h11 says both are ``DONE``: an HTTP/1.0 server or ``Connection: close``
means a new connection next time), and only while ``KeptBudget`` has room, so
thousands of idle sockets cannot exhaust the process's file limit.

Errors: anything that is not an answer raises ``ProbeFailed`` (refused,
reset, closed early, a malformed response: h11's errors are translated here,
chained) or ``OSError`` (refused, unreachable, TLS failure); the caller's
timeout cancels. Every path closes the connection it could not keep.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import NamedTuple

import h11

__all__ = ["HttpChannel", "KeptBudget", "ProbeFailed", "Response", "http_ssl_context",
           "tcp_connect"]

MAX_HEADER_BYTES = 100 * 1024
"""The largest response head accepted (httpcore's limit, which the prober used before)."""

USER_AGENT = b"scaleset-prober"


class ProbeFailed(Exception):
    """An attempt got no usable answer: the connection ended early or the response was bad."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        """True when a kept connection ended before any byte of the response: open a new one."""


class Response(NamedTuple):
    """What a probe needs of a response: its status and (up to a limit) its body."""

    status: int
    body: bytes


class KeptBudget:
    """How many idle connections all channels may keep at once (one event loop's, not locked)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.kept = 0

    def take(self) -> bool:
        """Whether one more idle connection may be kept (and count it)."""
        if self.kept >= self.limit:
            return False
        self.kept += 1
        return True

    def give_back(self) -> None:
        """An idle connection was taken into use or closed."""
        self.kept -= 1


def http_ssl_context() -> ssl.SSLContext:
    """TLS as the prober has always done it: no certificate or host name check, HTTP/1.1.

    A load balancer does not check an instance's certificate, and instances use
    self-signed ones.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


async def tcp_connect(address: str, port: int) -> None:
    """Open a TCP connection to ``address:port`` and close it (raises ``OSError`` if refused)."""
    transport, _protocol = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, address, port)
    transport.close()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 client connection: h11's state plus a waiter woken by the transport."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.transport: asyncio.Transport | None = None
        self.ended = False
        """The peer closed or reset it, or it was aborted: never to be used again."""
        self.received = 0
        """Bytes received since the current request went out."""
        self.busy = False
        self.stray = False
        """Bytes arrived while no request was out: its framing cannot be trusted."""
        self.lost_error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self.stray = True
            return
        self.received += len(data)
        self.h11.receive_data(data)
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self.h11.receive_data(b"")
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.lost_error = exc
        self.h11.receive_data(b"")
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- use -----------------------------------------------------------------------------------

    def reusable(self) -> bool:
        """Still open, idle and clean: fit for the next request."""
        return (not self.ended and not self.stray and self.transport is not None
                and not self.transport.is_closing()
                and self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE)

    def abort(self) -> None:
        """Close at once, without flushing (nothing is ever left to send)."""
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: h11.Request, *, read_body: bool,
                       max_body: int) -> tuple[Response, bool]:
        """Send ``request``; the response and whether the connection may be used again.

        With ``read_body`` the body is read up to ``max_body`` bytes (a longer one
        is cut there and the connection not kept). Without it the answer is the
        status alone, as soon as the head is in; the connection is kept only if
        the rest of the response had already arrived with it.
        """
        assert self.transport is not None
        self.busy, self.received = True, 0
        try:
            self.transport.write(self.h11.send(request) + self.h11.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as e:
            raise ProbeFailed(f"cannot send the request: {e}") from e
        status: int | None = None
        body = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise self._failure(str(e)) from (self.lost_error or e)
            if event is h11.NEED_DATA:
                if status is not None and not read_body:
                    return Response(status, b""), False  # the rest is not worth a wait
                if self.ended:  # h11 had the EOF and still wants more: it was aborted
                    raise self._failure("the connection closed before the response")
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            kind = type(event)
            if kind is h11.Response:
                assert isinstance(event, h11.Response)
                status = event.status_code
            elif kind is h11.Data:
                assert isinstance(event, h11.Data)
                if read_body:
                    body += event.data
                    if len(body) > max_body:
                        assert status is not None
                        return Response(status, bytes(body[:max_body])), False
            elif kind is h11.EndOfMessage:
                assert status is not None
                self.busy = False
                keep = (self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
                        and not self.ended)
                if keep:
                    self.h11.start_next_cycle()
                return Response(status, bytes(body)), keep
            elif kind is h11.ConnectionClosed:
                raise self._failure("the connection closed before the response")
            # InformationalResponse (1xx) and anything else: read on

    def _failure(self, message: str) -> ProbeFailed:
        # Nothing of the response arrived and the peer hung up: a kept connection it had
        # dropped just before (or as) the request went out.
        return ProbeFailed(message, retryable=self.received == 0 and self.ended)


class HttpChannel:
    """GETs to one instance's port, over at most one kept connection (one caller at a time).

    ``close()`` ends the kept connection; the channel can be used again after it
    (it then connects anew).
    """

    def __init__(self, address: str, port: int, *, target: bytes, host: bytes,
                 ssl_context: ssl.SSLContext | None, budget: KeptBudget) -> None:
        """``target`` is the request target (``/health``), ``host`` the Host header's value."""
        self._address = address
        self._port = port
        # No Accept-Encoding, so an extension's JSON answer comes as it is (httpx asked for
        # gzip and decoded it; a body compressed unasked now reads as not JSON: Healthy).
        try:
            self._request = h11.Request(method="GET", target=target, headers=[
                (b"Host", host), (b"User-Agent", USER_AGENT), (b"Accept", b"*/*")])
        except h11.LocalProtocolError as e:
            raise ProbeFailed(f"cannot make a request for {target!r}: {e}") from e
        self._ssl = ssl_context
        self._budget = budget
        self._kept: _Connection | None = None

    async def get(self, *, read_body: bool, max_body: int = 0) -> Response:
        """One GET: on the kept connection if it is still fit, else on a new one."""
        connection = self._take()
        if connection is not None:
            try:
                return await self._exchange(connection, read_body, max_body)
            except ProbeFailed as e:
                if not e.retryable:
                    raise
            # The kept connection was gone: once more on a new one, within the same attempt.
        return await self._exchange(await self._connect(), read_body, max_body)

    def close(self) -> None:
        """Close the kept connection, if any."""
        connection = self._take()
        if connection is not None:
            connection.abort()

    def _take(self) -> _Connection | None:
        connection, self._kept = self._kept, None
        if connection is None:
            return None
        self._budget.give_back()
        if connection.reusable():
            return connection
        connection.abort()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _transport, connection = await loop.create_connection(
            _Connection, self._address, self._port, ssl=self._ssl)
        return connection

    async def _exchange(self, connection: _Connection, read_body: bool,
                        max_body: int) -> Response:
        keep = False
        try:
            response, keep = await connection.exchange(self._request, read_body=read_body,
                                                       max_body=max_body)
        finally:
            # A timeout or cancellation mid-exchange leaves the framing unknown: close.
            if keep and self._kept is None and self._budget.take():
                self._kept = connection
            else:
                connection.abort()
        return response
