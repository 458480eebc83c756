"""The process driver's prober against real sockets on loopback addresses.

Small stdlib HTTP servers run in threads on 127.0.0.1 and other 127.x.y.z
addresses (Linux routes all of 127.0.0.0/8 to loopback); the scale test serves
1,000 endpoints from one asyncio thread. Intervals are fractions of a second;
timing assertions are lower bounds ("not before") or generous deadlines.
"""

from __future__ import annotations

import asyncio
import collections
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator

import pytest

from scaleset.drivers.base import ProbeSpec
from scaleset.drivers.process.probes import HealthExtensionSpec, Prober
from scaleset.model.instance import HealthState

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="needs 127.0.0.0/8 routed to loopback (Linux)")

H, U, INIT = HealthState.HEALTHY, HealthState.UNHEALTHY, HealthState.INITIALIZING
DEADLINE = 5.0

ROUTES: dict[str, tuple[int, bytes]] = {
    "/ok": (200, b"ok"),
    "/fail": (500, b"broken"),
    "/healthy": (200, json.dumps({"ApplicationHealthState": "Healthy"}).encode()),
    "/unhealthy": (200, json.dumps({"applicationHealthState": "UNHEALTHY"}).encode()),
    "/plain": (200, b"<html>fine</html>"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.count(self.path)
        if self.path == "/hang":
            self.server.release.wait(DEADLINE)
            return
        status, body = ROUTES.get(self.path, (404, b"no such route"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that counts requests per path and joins its threads on close."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: str) -> None:
        super().__init__((address, 0), _Handler)
        self.release = threading.Event()  # lets /hang requests finish
        self.hits: collections.Counter[str] = collections.Counter()
        self._hits_lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def count(self, path: str) -> None:
        with self._hits_lock:
            self.hits[path] += 1

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a probe that gave up on /hang leaves a broken pipe behind: expected

    def close(self) -> None:
        """Stop listening and wait for every request thread (idempotent)."""
        self.release.set()
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[str], _Server]]:
    """Start an HTTP server on a loopback address (free port); all are closed at the end."""
    servers: list[_Server] = []

    def start(address: str = "127.0.0.1") -> _Server:
        server = _Server(address)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class _Changes:
    """``on_change`` calls, recorded from the prober thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: list[Hashable] = []

    def __call__(self, key: Hashable) -> None:
        with self._lock:
            self.keys.append(key)

    def count(self, key: Hashable) -> int:
        with self._lock:
            return self.keys.count(key)


@pytest.fixture
def changes() -> _Changes:
    return _Changes()


@pytest.fixture
def prober(changes: _Changes) -> Iterator[Prober]:
    p = Prober(changes, timeout_cap=0.5)
    p.start()
    yield p
    p.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE) -> float:
    """Poll until ``predicate()``; the seconds it took. Fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def closed_port(address: str) -> int:
    """A port nothing listens on at ``address`` (bound once, then released)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def http_probe(port: int, path: str, *, protocol: str = "Http", interval: float = 0.2,
               probes: int = 2) -> ProbeSpec:
    return ProbeSpec(protocol=protocol, port=port, request_path=path,  # type: ignore[arg-type]
                     interval_seconds=interval, number_of_probes=probes)


def http_extension(port: int, path: str, *, grace: float = 0.0, interval: float = 0.2,
                   probes: int = 1) -> HealthExtensionSpec:
    return HealthExtensionSpec(protocol="http", port=port, request_path=path,
                               interval_seconds=interval, number_of_probes=probes,
                               grace_period_seconds=grace)


# -- load-balancer probe ------------------------------------------------------------------------


def test_http_probe_is_healthy_on_200_and_unhealthy_on_500(
        prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.0.1")
    prober.watch("ok", server.address, probe=http_probe(server.port, "/ok"), extension=None)
    prober.watch("fail", server.address, probe=http_probe(server.port, "/fail"), extension=None)
    assert prober.probe_health("ok") in (INIT, H)
    assert prober.extension_health("ok") is None
    wait_for(lambda: prober.probe_health("ok") is H)
    wait_for(lambda: prober.probe_health("fail") is U)
    assert server.hits["/ok"] >= 1 and server.hits["/fail"] >= 2


def test_a_freshly_started_application_is_seen_healthy_quickly(
        prober: Prober, serve: Callable[[str], _Server]) -> None:
    """A long interval does not delay the first Healthy: Initializing retries fast."""
    address = "127.0.2.7"
    port = closed_port(address)
    probe = ProbeSpec("Tcp", port, interval_seconds=30, number_of_probes=2)
    prober.watch("booting", address, probe=probe, extension=None)
    time.sleep(0.3)
    assert prober.probe_health("booting") is INIT  # failed retries between intervals don't count
    with socket.create_server((address, port)):
        assert wait_for(lambda: prober.probe_health("booting") is H) < 2.0


def test_tcp_probe_is_up_on_a_listening_port_and_down_on_a_closed_one(
        prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.1.2")
    tcp = ProbeSpec("Tcp", server.port, interval_seconds=0.2, number_of_probes=2)
    prober.watch("listening", server.address, probe=tcp, extension=None)
    closed = ProbeSpec("Tcp", closed_port("127.0.1.3"), interval_seconds=0.2, number_of_probes=2)
    prober.watch("closed", "127.0.1.3", probe=closed, extension=None)
    wait_for(lambda: prober.probe_health("listening") is H)
    wait_for(lambda: prober.probe_health("closed") is U)


def test_https_to_a_port_that_does_not_speak_tls_is_down(
        prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.1.4")
    prober.watch("tls", server.address, probe=http_probe(server.port, "/ok", protocol="Https"),
                 extension=None)
    wait_for(lambda: prober.probe_health("tls") is U)
    assert not server.hits  # no request ever got through


def test_a_server_that_hangs_times_out_and_is_down(
        changes: _Changes, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.1.5")
    with Prober(changes, timeout_cap=0.2) as prober:
        prober.watch("hang", server.address,
                     probe=http_probe(server.port, "/hang", interval=0.3, probes=1),
                     extension=None)
        wait_for(lambda: prober.probe_health("hang") is U)
    assert server.hits["/hang"] >= 1


def test_a_server_going_away_turns_unhealthy_after_number_of_probes_failures(
        prober: Prober, serve: Callable[[str], _Server], changes: _Changes) -> None:
    server = serve("127.0.1.6")
    interval, probes = 0.3, 3
    prober.watch("app", server.address,
                 probe=http_probe(server.port, "/ok", interval=interval, probes=probes),
                 extension=None)
    wait_for(lambda: prober.probe_health("app") is H)
    assert changes.count("app") == 1
    server.close()
    took = wait_for(lambda: prober.probe_health("app") is U)
    # Failures count once per interval: not before the third, two intervals after the first.
    assert took >= (probes - 1) * interval * 0.9
    assert changes.count("app") == 2


def test_replacing_a_watch_starts_again_at_initializing(
        prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.1.7")
    prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"), extension=None)
    wait_for(lambda: prober.probe_health("vm") is H)
    prober.watch("vm", server.address, probe=http_probe(server.port, "/fail", probes=3),
                 extension=None)
    assert prober.probe_health("vm") is INIT
    wait_for(lambda: prober.probe_health("vm") is U)


# -- Application Health extension ---------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    ("/healthy", H),
    ("/unhealthy", U),
    ("/plain", H),
    ("/fail", U),
])
def test_extension_reads_rich_health_states(
        prober: Prober, serve: Callable[[str], _Server], path: str,
        expected: HealthState) -> None:
    server = serve("127.0.3.1")
    prober.watch("vm", server.address, probe=None,
                 extension=http_extension(server.port, path, grace=0.3))
    assert prober.probe_health("vm") is None
    wait_for(lambda: prober.extension_health("vm") is expected)
    time.sleep(0.3)
    assert prober.extension_health("vm") is expected


def test_extension_holds_initializing_through_the_grace_period(
        prober: Prober, serve: Callable[[str], _Server], changes: _Changes) -> None:
    server = serve("127.0.3.2")
    prober.watch("vm", server.address, probe=None,
                 extension=http_extension(server.port, "/unhealthy", grace=1.5, interval=0.1))
    started = time.monotonic()
    wait_for(lambda: server.hits["/unhealthy"] >= 3)
    if time.monotonic() - started < 1.2:
        assert prober.extension_health("vm") is INIT
    took = wait_for(lambda: prober.extension_health("vm") is U)
    assert time.monotonic() - started >= 1.5 - 0.05 and took < DEADLINE
    wait_for(lambda: changes.count("vm") == 1)  # the grace period ran out: the driver is told


def test_extension_over_tcp(prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.3.3")
    up = HealthExtensionSpec("tcp", server.port, interval_seconds=0.2, grace_period_seconds=0)
    prober.watch("up", server.address, probe=None, extension=up)
    down = HealthExtensionSpec("tcp", closed_port("127.0.3.4"), interval_seconds=0.2,
                               grace_period_seconds=0.2)
    prober.watch("down", "127.0.3.4", probe=None, extension=down)
    wait_for(lambda: prober.extension_health("up") is H)
    wait_for(lambda: prober.extension_health("down") is U)


def test_probe_and_extension_together(prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.3.5")
    prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"),
                 extension=http_extension(server.port, "/unhealthy", grace=0.2))
    wait_for(lambda: prober.probe_health("vm") is H and prober.extension_health("vm") is U)


# -- lifecycle ----------------------------------------------------------------------------------


def test_unwatch_stops_probing(prober: Prober, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.4.1")
    prober.watch("vm", server.address, probe=http_probe(server.port, "/ok", interval=0.1),
                 extension=http_extension(server.port, "/healthy", interval=0.1))
    wait_for(lambda: server.hits["/ok"] >= 2 and server.hits["/healthy"] >= 2)
    prober.unwatch("vm")
    assert prober.probe_health("vm") is None and prober.extension_health("vm") is None
    time.sleep(0.2)  # an attempt already in flight may still land
    seen = sum(server.hits.values())
    time.sleep(0.5)
    assert sum(server.hits.values()) == seen
    prober.unwatch("vm")  # twice is fine


def test_watches_made_before_start_begin_at_start(
        changes: _Changes, serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.4.2")
    prober = Prober(changes)
    try:
        prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"), extension=None)
        time.sleep(0.2)
        assert prober.probe_health("vm") is INIT and not server.hits
        prober.start()
        prober.start()  # idempotent
        wait_for(lambda: prober.probe_health("vm") is H)
    finally:
        prober.stop()


def test_stop_leaves_no_thread_running(changes: _Changes,
                                       serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.4.3")
    before = set(threading.enumerate())
    prober = Prober(changes)
    prober.start()
    prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"),
                 extension=http_extension(server.port, "/healthy"))
    wait_for(lambda: prober.probe_health("vm") is H)
    prober.stop()
    assert not probers_threads_left(before)
    assert prober.probe_health("vm") is None  # stop() forgets every watch
    prober.stop()  # twice is fine
    # And it can start again.
    prober.start()
    prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"), extension=None)
    wait_for(lambda: prober.probe_health("vm") is H)
    prober.stop()
    assert not probers_threads_left(before)


def probers_threads_left(before: set[threading.Thread]) -> set[threading.Thread]:
    """Threads started since ``before`` that still run, but for the fixture HTTP server's
    own request threads (one may still be finishing the last probe's request)."""
    return {t for t in set(threading.enumerate()) - before
            if "process_request_thread" not in t.name}


def test_a_failing_on_change_does_not_stop_probing(serve: Callable[[str], _Server]) -> None:
    server = serve("127.0.4.4")
    calls: list[Hashable] = []

    def explode(key: Hashable) -> None:
        calls.append(key)
        raise RuntimeError("the driver has a bug")

    with Prober(explode) as prober:
        prober.watch("vm", server.address, probe=http_probe(server.port, "/ok"), extension=None)
        wait_for(lambda: prober.probe_health("vm") is H)
        server.close()
        wait_for(lambda: prober.probe_health("vm") is U)
    assert calls == ["vm", "vm"]


# -- scale --------------------------------------------------------------------------------------

ADDRESSES, PORTS_EACH = 50, 20
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class _Answer(asyncio.Protocol):
    """Answers one HTTP request with 200 and closes: as little work per probe as can be."""

    def __init__(self, owner: _ManyEndpoints) -> None:
        self._owner = owner
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\r\n\r\n" in self._buffer and self._transport is not None:
            self._owner.requests += 1
            self._transport.write(RESPONSE)
            self._transport.close()
            self._transport = None


class _ManyEndpoints:
    """``ADDRESSES x PORTS_EACH`` listening sockets served by one asyncio loop in one thread."""

    def __init__(self) -> None:
        self.endpoints: list[tuple[str, int]] = []
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(DEADLINE)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._close())
        finally:
            self._loop.close()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        for a in range(ADDRESSES):
            address = f"127.3.{a // 250}.{a % 250 + 1}"
            for _ in range(PORTS_EACH):
                server = await loop.create_server(lambda: _Answer(self), address, 0)
                self._servers.append(server)
                self.endpoints.append(server.sockets[0].getsockname()[:2])

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0.05)  # let transports closed a moment ago finish closing

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(DEADLINE)


def _raise_file_limit(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def test_a_thousand_instances_all_reach_healthy_within_seconds(changes: _Changes) -> None:
    _raise_file_limit(8192)
    endpoints = _ManyEndpoints()
    prober = Prober(changes)
    try:
        prober.start()
        started = time.monotonic()
        for i, (address, port) in enumerate(endpoints.endpoints):
            prober.watch(i, address, probe=http_probe(port, "/health", interval=1.0),
                         extension=None)
        assert len(endpoints.endpoints) == 1000
        # About 3 s on an idle 2-core machine; the deadline leaves room for a busy one.
        wait_for(lambda: all(prober.probe_health(i) is H for i in range(1000)), timeout=15.0)
        took = time.monotonic() - started
        wait_for(lambda: set(changes.keys) == set(range(1000)))
        print(f"1,000 instances Healthy after {took:.2f} s; {endpoints.requests} requests")
    finally:
        prober.stop()
        endpoints.close()
