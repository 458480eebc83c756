"""The prober's connections as an instance's server sees them: kept, dropped, refused, bounded.

An asyncio HTTP/1.1 server in a thread counts the connections it accepts, the
ones open now and the requests per path, and can misbehave on request: close a
connection just after answering, close a kept connection when the next request
arrives on it, stop answering, or send a body late. A killed instance is a real
process killed with SIGKILL. Intervals are fractions of a second; assertions
wait with generous deadlines.
"""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path

import pytest

from scaleset.drivers.base import ProbeSpec
from scaleset.drivers.process.probes import HealthExtensionSpec, Prober
from scaleset.model.instance import HealthState
from scaleset.security.tls import ensure_tls
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="needs 127.0.0.0/8 routed to loopback (Linux)")

H, U = HealthState.HEALTHY, HealthState.UNHEALTHY
DEADLINE = 10.0
STEADY = 0.25
"""The interval (and so the timeout) where a test counts connections exactly: a busy
machine must not time an attempt out, which would rightly drop its connection."""
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
UNHEALTHY_JSON = b'{"ApplicationHealthState": "Unhealthy"}'


class _Conn(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self._server = server
        self._buffer = b""
        self._served = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.accepted += 1
        self._server.open += 1
        self._server.transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.open -= 1
        if self._transport is not None:
            self._server.transports.discard(self._transport)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and b"\r\n\r\n" in self._buffer:
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self._answer(head.split(b" ")[1].decode())

    def _answer(self, path: str) -> None:
        server, transport = self._server, self._transport
        assert transport is not None
        server.count(path)
        self._served += 1
        if server.drop_reused and self._served > 1:
            transport.close()  # as if it had timed the idle connection out just now
            return
        if server.hang:
            return
        if path == "/close":
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            transport.close()
        elif path == "/idle-close":
            transport.write(OK)
            asyncio.get_running_loop().call_later(0.02, transport.close)
        elif path == "/late-body":
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
            asyncio.get_running_loop().call_later(
                3.0, lambda: transport.is_closing() or transport.write(b"k"))
        elif path == "/garbage":
            transport.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        elif path == "/continue":
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        elif path == "/stray":
            transport.write(OK)
            asyncio.get_running_loop().call_later(
                0.01, lambda: transport.is_closing() or transport.write(b"\r\n"))
        elif path == "/chunked":
            half = len(UNHEALTHY_JSON) // 2
            transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                            % (half, UNHEALTHY_JSON[:half], len(UNHEALTHY_JSON) - half,
                               UNHEALTHY_JSON[half:]))
        elif path == "/big":
            # Cut at 64 KiB, what the extension reads, this is no longer JSON.
            body = b'{"pad": "%s", "ApplicationHealthState": "Unhealthy"}' % (b"x" * 100_000)
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(body), body))
        elif path == "/unhealthy":
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(UNHEALTHY_JSON), UNHEALTHY_JSON))
        else:
            transport.write(OK)


class _Server:
    """An HTTP/1.1 keep-alive server on its own loop thread; counts are read without a lock
    (plain ints and a Counter updated on one thread)."""

    def __init__(self, address: str = "127.0.0.1", *,
                 tls: ssl.SSLContext | None = None) -> None:
        self.accepted = 0
        self.open = 0
        self.requests: collections.Counter[str] = collections.Counter()
        self.drop_reused = False
        self.transports: set[asyncio.Transport] = set()
        self.hang = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._address, self._tls = address, tls
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(DEADLINE)

    def count(self, path: str) -> None:
        self.requests[path] += 1

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(self._loop.create_server(
            lambda: _Conn(self), self._address, 0, ssl=self._tls))
        self.address, self.port = self._server.sockets[0].getsockname()[:2]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        for transport in list(self.transports):
            transport.abort()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.run_until_complete(asyncio.sleep(0.05))  # transports finish closing
        self._loop.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(DEADLINE)


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(address: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> _Server:
        server = _Server(address, tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class _Attempts:
    """``on_attempt`` calls: (when the attempt began, ok), recorded on the prober thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[float, bool]] = []

    def __call__(self, source: str, protocol: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.seen.append((time.monotonic() - seconds, ok))

    def results(self) -> list[bool]:
        with self.lock:
            return [ok for _began, ok in self.seen]

    def since(self, moment: float) -> list[bool]:
        with self.lock:
            return [ok for began, ok in self.seen if began > moment]


def http(port: int, path: str, *, protocol: str = "Http", interval: float = 0.05,
         probes: int = 1) -> ProbeSpec:
    return ProbeSpec(protocol=protocol, port=port, request_path=path,  # type: ignore[arg-type]
                     interval_seconds=interval, number_of_probes=probes)


@pytest.fixture
def attempts() -> _Attempts:
    return _Attempts()


@pytest.fixture
def prober(attempts: _Attempts) -> Iterator[Prober]:
    with Prober(timeout_cap=0.5, on_attempt=attempts) as p:
        yield p


def _at_least(server: _Server, path: str, n: int) -> Callable[[], bool]:
    return lambda: server.requests[path] >= n


def test_an_http_probe_reuses_one_connection(prober: Prober, serve: Callable[..., _Server],
                                             attempts: _Attempts) -> None:
    server = serve()
    prober.watch("vm", server.address, probe=http(server.port, "/ok", interval=STEADY),
                 extension=None)
    wait_for(_at_least(server, "/ok", 5), timeout=DEADLINE, what="five probes", every=0.02)
    assert server.accepted == 1 and server.open == 1
    assert prober.probe_health("vm") is H and all(attempts.results())


def test_an_extension_reads_its_answer_over_a_kept_connection(
        prober: Prober, serve: Callable[..., _Server]) -> None:
    server = serve()
    extension = HealthExtensionSpec("http", server.port, request_path="/unhealthy",
                                    interval_seconds=STEADY, grace_period_seconds=0)
    prober.watch("vm", server.address, probe=None, extension=extension)
    wait_for(_at_least(server, "/unhealthy", 5), timeout=DEADLINE, what="five probes",
             every=0.02)
    assert prober.extension_health("vm") is U
    assert server.accepted == 1


def test_https_keeps_its_connection_and_does_not_check_the_certificate(
        prober: Prober, serve: Callable[..., _Server], tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)  # signed by a CA the prober has never seen
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    server = serve(tls=context)
    prober.watch("vm", server.address,
                 probe=http(server.port, "/ok", protocol="Https", interval=STEADY),
                 extension=None)
    wait_for(_at_least(server, "/ok", 5), timeout=DEADLINE, what="five probes", every=0.02)
    assert prober.probe_health("vm") is H and server.accepted == 1


def test_a_server_that_closes_after_each_answer_gets_a_connection_per_probe(
        prober: Prober, serve: Callable[..., _Server], attempts: _Attempts) -> None:
    server = serve()
    prober.watch("close", server.address, probe=http(server.port, "/close", interval=STEADY),
                 extension=None)
    prober.watch("idle", server.address,
                 probe=http(server.port, "/idle-close", interval=STEADY), extension=None)
    wait_for(lambda: server.requests["/close"] >= 5 and server.requests["/idle-close"] >= 5,
             timeout=DEADLINE, what="five probes each", every=0.02)
    assert server.accepted >= sum(server.requests.values()) - 2  # bar the ones in flight
    assert prober.probe_health("close") is H and prober.probe_health("idle") is H
    assert all(attempts.results())


def test_a_kept_connection_closed_as_the_request_goes_out_is_opened_again_in_the_attempt(
        prober: Prober, serve: Callable[..., _Server], attempts: _Attempts) -> None:
    """With one probe to turn Unhealthy, a single failed attempt would show."""
    server = serve()
    server.drop_reused = True
    prober.watch("vm", server.address, probe=http(server.port, "/ok", interval=STEADY),
                 extension=None)
    wait_for(lambda: len(attempts.results()) >= 8, timeout=DEADLINE, what="eight attempts",
             every=0.02)
    assert all(attempts.results())
    assert prober.probe_health("vm") is H
    # Each attempt after the first: a request dropped on the kept connection, then a new one.
    assert server.accepted >= len(attempts.results()) - 1


def test_a_killed_instance_fails_its_next_probe(attempts: _Attempts, tmp_path: Path) -> None:
    script = tmp_path / "instance.py"
    script.write_text(textwrap.dedent("""
        import http.server, sys

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.5.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with Prober(timeout_cap=0.5, on_attempt=attempts) as prober:
            prober.watch("vm", "127.0.5.1", probe=http(port, "/ok", interval=STEADY),
                         extension=None)
            wait_for(lambda: len(attempts.results()) >= 3, timeout=DEADLINE,
                     what="three attempts", every=0.02)
            assert all(attempts.results()) and prober.probe_health("vm") is H
            process.send_signal(signal.SIGKILL)
            process.wait(DEADLINE)
            killed = time.monotonic()
            wait_for(lambda: attempts.since(killed), timeout=DEADLINE, what="a probe after",
                     every=0.02)
            assert attempts.since(killed)[0] is False  # the very next probe, not a later one
            wait_for(lambda: prober.probe_health("vm") is U, timeout=1.0, what="Unhealthy",
                     every=0.02)
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_server_that_stops_answering_times_out_and_its_connection_is_not_reused(
        prober: Prober, serve: Callable[..., _Server]) -> None:
    server = serve()
    prober.watch("vm", server.address, probe=http(server.port, "/ok", interval=0.3),
                 extension=None)
    wait_for(lambda: prober.probe_health("vm") is H, timeout=DEADLINE, what="Healthy")
    assert server.accepted == 1
    server.hang = True
    wait_for(lambda: prober.probe_health("vm") is U, timeout=DEADLINE, what="Unhealthy")
    server.hang = False
    wait_for(lambda: prober.probe_health("vm") is H, timeout=DEADLINE, what="Healthy again")
    assert server.accepted >= 2  # the connection that timed out was dropped


def test_a_status_is_the_answer_without_waiting_for_the_body(
        prober: Prober, serve: Callable[..., _Server]) -> None:
    """The body arrives 3 s late, after the 0.3 s timeout: a 200 head is already Healthy."""
    server = serve()
    prober.watch("vm", server.address, probe=http(server.port, "/late-body", interval=0.3),
                 extension=None)
    wait_for(_at_least(server, "/late-body", 3), timeout=DEADLINE, what="three probes",
             every=0.02)
    assert prober.probe_health("vm") is H
    assert server.accepted >= 3  # a half-read response's connection is not kept


def test_a_tcp_probe_connects_and_closes_every_time(prober: Prober,
                                                   serve: Callable[..., _Server]) -> None:
    server = serve()
    tcp = ProbeSpec("Tcp", server.port, interval_seconds=0.05, number_of_probes=1)
    prober.watch("vm", server.address, probe=tcp, extension=None)
    wait_for(lambda: server.accepted >= 5, timeout=DEADLINE, what="five connections",
             every=0.02)
    assert prober.probe_health("vm") is H and not server.requests
    prober.unwatch("vm")
    wait_for(lambda: server.open == 0, timeout=DEADLINE, what="no connection left")


def test_unwatch_and_stop_close_the_kept_connections(
        attempts: _Attempts, serve: Callable[..., _Server]) -> None:
    server = serve()
    with Prober(timeout_cap=0.5) as prober:
        for key in ("a", "b", "c"):
            prober.watch(key, server.address,
                         probe=http(server.port, f"/{key}", interval=STEADY), extension=None)
        wait_for(lambda: server.open == 3 and min(server.requests.values()) >= 2,
                 timeout=DEADLINE, what="three kept connections", every=0.02)
        prober.unwatch("a")
        wait_for(lambda: server.open == 2, timeout=DEADLINE, what="a's connection closed",
                 every=0.02)
    wait_for(lambda: server.open == 0, timeout=DEADLINE, what="every connection closed",
             every=0.02)


@pytest.mark.parametrize("kept", [0, 1])
def test_idle_connections_are_bounded(kept: int, serve: Callable[..., _Server]) -> None:
    server = serve()
    with Prober(timeout_cap=0.5, max_kept_connections=kept) as prober:
        for key in ("a", "b", "c"):
            prober.watch(key, server.address, probe=http(server.port, f"/{key}"),
                         extension=None)
        wait_for(lambda: min(server.requests[f"/{k}"] for k in "abc") >= 6,
                 timeout=DEADLINE, what="six probes each", every=0.02)
        requests = sum(server.requests.values())
        # All but `kept` watches connect anew for every probe (a few may be in flight).
        assert server.accepted >= requests - (kept * requests // 3) - 3 - kept
        if kept == 0:
            assert server.accepted >= requests - 3
        wait_for(lambda: all(prober.probe_health(k) is H for k in "abc"), timeout=DEADLINE,
                 what="all Healthy")


def test_watch_and_unwatch_from_many_threads_leave_probing_as_the_table_says(
        serve: Callable[..., _Server]) -> None:
    server = serve()
    keys = list(range(16))

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            key = rng.choice(keys)
            if rng.random() < 0.5:
                prober.watch(key, server.address,
                             probe=http(server.port, f"/k{key}", interval=STEADY),
                             extension=None)
            else:
                prober.unwatch(key)

    with Prober(timeout_cap=0.5) as prober:
        threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        watched: set[Hashable] = {k for k in keys if prober.probe_health(k) is not None}
        wait_for(lambda: server.open == len(watched), timeout=DEADLINE,
                 what=f"one connection for each of {len(watched)} watched keys", every=0.02)
        time.sleep(0.2)  # attempts in flight when a key was unwatched have landed
        before = dict(server.requests)
        time.sleep(3 * STEADY)
        for key in keys:
            grew = server.requests[f"/k{key}"] > before.get(f"/k{key}", 0)
            assert grew == (key in watched), key
        assert server.open == len(watched)


def _extension(port: int, path: str) -> HealthExtensionSpec:
    return HealthExtensionSpec("http", port, request_path=path, interval_seconds=STEADY,
                               grace_period_seconds=0)


def test_answers_in_their_less_common_shapes(prober: Prober,
                                             serve: Callable[..., _Server]) -> None:
    """Not HTTP: Unhealthy. A 100 Continue first, or a chunked body: read through and kept.
    A body past the 64 KiB the extension reads: cut there (so not JSON: Healthy, as
    before) and its connection not kept."""
    server = serve()
    prober.watch("garbage", server.address, probe=http(server.port, "/garbage", interval=STEADY),
                 extension=None)
    prober.watch("continue", server.address,
                 probe=http(server.port, "/continue", interval=STEADY), extension=None)
    prober.watch("chunked", server.address, probe=None,
                 extension=_extension(server.port, "/chunked"))
    prober.watch("big", server.address, probe=None, extension=_extension(server.port, "/big"))
    wait_for(lambda: min(server.requests[p] for p in ("/garbage", "/continue", "/chunked",
                                                         "/big")) >= 5,
             timeout=DEADLINE, what="five probes each", every=0.02)
    assert prober.probe_health("garbage") is U
    assert prober.probe_health("continue") is H
    assert prober.extension_health("chunked") is U
    assert prober.extension_health("big") is H
    # Kept: continue and chunked, one connection each; garbage and big, one per probe.
    assert server.accepted >= server.requests["/garbage"] + server.requests["/big"]
    assert server.accepted <= server.requests["/garbage"] + server.requests["/big"] + 4


def test_bytes_arriving_between_probes_mean_a_new_connection(
        prober: Prober, serve: Callable[..., _Server], attempts: _Attempts) -> None:
    server = serve()
    prober.watch("vm", server.address, probe=http(server.port, "/stray", interval=STEADY),
                 extension=None)
    wait_for(_at_least(server, "/stray", 5), timeout=DEADLINE, what="five probes", every=0.02)
    assert all(attempts.results()) and prober.probe_health("vm") is H
    assert server.accepted >= server.requests["/stray"] - 1
