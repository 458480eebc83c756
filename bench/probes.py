"""Prober benchmark: CPU per HTTP probe at 100 / 1,000 / 2,000 probes a second.

A fake instance server in its own process (so its CPU is not the prober's)
listens on one port per instance over many loopback addresses (127.4.x.y) and
answers ``GET /health`` with a 200, either keeping each connection
(``keepalive``: HTTP/1.1 as a modern server does) or closing it after every
answer (``close``: ``Connection: close``, as the example images' stdlib
servers effectively do). The prober probes every instance once a second
(``--interval``), so the number of instances is the rate; after all are
Healthy it measures a window of ``--seconds``: the prober process's CPU
(``time.process_time``, all its threads; of it the kernel's share, which on
loopback includes delivering to the server), probes completed (``on_attempt``),
failures, the connections the server accepted and the server's own share of a
core (near 1.0, the server is what limits the rate: TLS handshakes, say).

Beside it, from the same run, the baseline: the approach the prober had
before, kept here small: one asyncio loop, an ``httpx.AsyncClient`` with no
keep-alive (a new connection per probe), 64 probes in flight, each in
``asyncio.timeout``, against the keep-alive server (the client closes anyway).
It lacks the state machines and callbacks of the real prober, so if anything
it flatters the baseline. Every measurement runs in its own process, ``--runs``
times (3); the table gives each run, then min and median.

    python bench/probes.py                                   # 100, 1000, 2000/s; 3 runs
    python bench/probes.py --rates 2000 --runs 1 --seconds 5
    python bench/probes.py --protocol https                  # TLS (self-signed), same figures
    python bench/probes.py --interval 5 --rates 2000         # 10,000 instances every 5 s

Past 2,000 instances they share the fake server's 2,000 ports (each instance is
still its own watch with its own connection).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from common import machine, spread

PATH = "/health"
PER_ADDRESS = 50
"""Ports per loopback address: 2,000 instances are 40 addresses."""
MAX_ENDPOINTS = 2_000
"""Past this many instances they share the server's ports (each still its own connection),
so that the server's listening sockets plus one connection per instance fit its file limit."""
WARMUP_DEADLINE = 60.0
CONCURRENCY = 64


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the fake instance server (its own process) --------------------------------------------------

KEEP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
         b"Connection: close\r\n\r\nok")


class _Counts:
    connections = 0
    requests = 0


class _Instance(asyncio.Protocol):
    """Answers every request with 200 ``ok``; closes after it in ``close`` mode."""

    def __init__(self, keep: bool) -> None:
        self._keep = keep
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        _Counts.connections += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and b"\r\n\r\n" in self._buffer:
            _head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            _Counts.requests += 1
            if self._keep:
                self._transport.write(KEEP)
            else:
                self._transport.write(CLOSE)
                self._transport.close()
                self._transport = None


async def _serve(count: int, keep: bool, cert: str | None) -> None:
    loop = asyncio.get_running_loop()
    context = None
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert)
    endpoints = []
    for i in range(count):
        address = f"127.4.{i // PER_ADDRESS // 250}.{i // PER_ADDRESS % 250 + 1}"
        server = await loop.create_server(lambda: _Instance(keep), address, 0, ssl=context,
                                          backlog=64)
        endpoints.append(server.sockets[0].getsockname()[:2])
    print(json.dumps(endpoints), flush=True)
    # One line on stdin asks for the counts; end of input ends the server.
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(json.dumps({"connections": _Counts.connections, "requests": _Counts.requests,
                          "cpu": time.process_time()}), flush=True)


class _Server:
    """The fake instance server's process, and the counts it reports."""

    def __init__(self, count: int, mode: str, cert: str | None) -> None:
        cmd = [sys.executable, __file__, "--serve", str(count), "--mode", mode]
        if cert is not None:
            cmd += ["--cert", cert]
        self._process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)
        assert self._process.stdout is not None and self._process.stdin is not None
        self._in, self._out = self._process.stdin, self._process.stdout
        self.endpoints = [tuple(e) for e in json.loads(self._out.readline())]

    def counts(self) -> dict[str, float]:
        self._in.write("counts\n")
        self._in.flush()
        counts: dict[str, float] = json.loads(self._out.readline())
        return counts

    def close(self) -> None:
        self._in.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _self_signed(directory: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "instance")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path = directory / "instance.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


# -- the two probers -----------------------------------------------------------------------------


class _Tally:
    """Attempts and failures, counted on the probing thread."""

    def __init__(self) -> None:
        self.attempts = 0
        self.failures = 0

    def __call__(self, source: str, protocol: str, seconds: float, ok: bool) -> None:
        self.attempts += 1
        self.failures += not ok


def _measure_prober(endpoints: list[tuple[str, int]], scheme: str, interval: float,
                    seconds: float, server: _Server) -> dict[str, Any]:
    from scaleset.drivers.base import ProbeSpec
    from scaleset.drivers.process.probes import Prober
    from scaleset.model.instance import HealthState

    tally = _Tally()
    prober = Prober(on_attempt=tally, max_concurrent_probes=CONCURRENCY)
    protocol = "Https" if scheme == "https" else "Http"
    keys: list[Hashable] = list(range(len(endpoints)))
    try:
        prober.start()
        for key, (address, port) in zip(keys, endpoints, strict=True):
            prober.watch(key, address, extension=None, probe=ProbeSpec(
                protocol, port, request_path=PATH, interval_seconds=interval,
                number_of_probes=2))
        deadline = time.monotonic() + WARMUP_DEADLINE
        while not all(prober.probe_health(k) is HealthState.HEALTHY for k in keys):
            if time.monotonic() > deadline:
                raise SystemExit("not every instance became Healthy")
            time.sleep(0.1)
        _settle(tally, len(endpoints), interval)
        return _window(tally, seconds, server)
    finally:
        prober.stop()


def _measure_baseline(endpoints: list[tuple[str, int]], scheme: str, interval: float,
                      seconds: float, server: _Server) -> dict[str, Any]:
    """The old way: httpx, a new connection per probe, on one loop in a thread."""
    import httpx

    tally = _Tally()
    healthy: set[int] = set()
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    async def probe_one(key: int, url: str, client: httpx.AsyncClient,
                        slots: asyncio.Semaphore) -> None:
        next_due = time.monotonic()
        while True:
            ok = False
            async with slots:
                try:
                    async with asyncio.timeout(min(interval, 5.0)):
                        async with client.stream("GET", url) as response:
                            ok = response.status_code == 200
                except (httpx.HTTPError, OSError, TimeoutError):
                    pass
            tally("loadBalancer", scheme, 0.0, ok)
            if ok:
                healthy.add(key)
            now = time.monotonic()
            next_due = next_due + interval if next_due + interval > now else now + interval
            await asyncio.sleep(next_due - now)

    async def main() -> None:
        client = httpx.AsyncClient(
            verify=False, trust_env=False, follow_redirects=False, timeout=5.0,
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0))
        slots = asyncio.Semaphore(CONCURRENCY)
        tasks = [asyncio.create_task(probe_one(i, f"{scheme}://{a}:{p}{PATH}", client, slots))
                 for i, (a, p) in enumerate(endpoints)]
        await stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        deadline = time.monotonic() + WARMUP_DEADLINE
        while len(healthy) < len(endpoints):
            if time.monotonic() > deadline:
                raise SystemExit("not every instance answered the baseline")
            time.sleep(0.1)
        _settle(tally, len(endpoints), interval)
        return _window(tally, seconds, server)
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        loop.close()


def _settle(tally: _Tally, count: int, interval: float) -> None:
    """Wait until an interval holds about one attempt per instance, or as many as the one
    before (a prober that cannot keep up): a slow warm-up (TLS handshakes, say) leaves a
    backlog the cadence catches up on, which would inflate the window's rate."""
    last = -count
    for _ in range(20):
        before = tally.attempts
        time.sleep(interval)
        done = tally.attempts - before
        if abs(done - count) <= 0.05 * count or abs(done - last) <= 0.05 * count:
            return
        last = done


def _window(tally: _Tally, seconds: float, server: _Server) -> dict[str, Any]:
    before = (time.process_time(), time.monotonic(), tally.attempts, tally.failures,
              server.counts(), resource.getrusage(resource.RUSAGE_SELF).ru_stime)
    time.sleep(seconds)
    after = (time.process_time(), time.monotonic(), tally.attempts, tally.failures,
             server.counts(), resource.getrusage(resource.RUSAGE_SELF).ru_stime)
    cpu, wall = after[0] - before[0], after[1] - before[1]
    attempts, failures = after[2] - before[2], after[3] - before[3]
    return {
        "probesPerSecond": round(attempts / wall, 1),
        "cpuMsPerProbe": round(1000 * cpu / max(attempts, 1), 3),
        "systemMsPerProbe": round(1000 * (after[5] - before[5]) / max(attempts, 1), 3),
        "cpuShareOfACore": round(cpu / wall, 3),
        "failures": failures,
        "serverConnections": int(after[4]["connections"] - before[4]["connections"]),
        "serverRequests": int(after[4]["requests"] - before[4]["requests"]),
        "serverCpuShare": round((after[4]["cpu"] - before[4]["cpu"]) / wall, 3),
    }


def _one(args: argparse.Namespace) -> dict[str, Any]:
    _raise_file_limit()
    count = int(args.rate * args.interval)
    with tempfile.TemporaryDirectory() as tmp:
        cert = _self_signed(Path(tmp)) if args.protocol == "https" else None
        server = _Server(min(count, MAX_ENDPOINTS), args.mode, cert)
        try:
            measure = _measure_prober if args.impl == "prober" else _measure_baseline
            served = [(str(a), int(p)) for a, p in server.endpoints]
            endpoints = [served[i % len(served)] for i in range(count)]
            return measure(endpoints, args.protocol, args.interval, args.seconds, server)
        finally:
            server.close()


# -- the runs --------------------------------------------------------------------------------------

CASES = (("prober", "keepalive"), ("prober", "close"), ("baseline", "keepalive"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000,2000", help="probes per second")
    parser.add_argument("--interval", type=float, default=1.0, help="each instance's interval")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", choices=("http", "https"), default="http")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("keepalive", "close"), default="keepalive",
                        help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=("prober", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        _raise_file_limit()
        asyncio.run(_serve(args.serve, args.mode == "keepalive", args.cert))
        return
    if args.one:
        print(json.dumps(_one(args)))
        return

    print(f"machine: {machine()}")
    print(f"{args.protocol}, interval {args.interval} s, window {args.seconds} s, "
          f"{CONCURRENCY} in flight; each line one process")
    header = (f"{'run':>3} {'target/s':>8} {'impl':>8} {'server':>9} {'probes/s':>9} "
              f"{'CPU ms/probe':>12} {'of it sys':>9} {'core':>6} {'fail':>5} {'server conns':>12} "
              f"{'server core':>11}")
    print(header, flush=True)
    results: dict[tuple[float, str, str], list[dict[str, Any]]] = {}
    for run in range(1, args.runs + 1):
        for rate in (float(r) for r in args.rates.split(",")):
            for impl, mode in CASES:
                cmd = [sys.executable, __file__, "--one", "--impl", impl, "--mode", mode,
                       "--rate", str(rate), "--interval", str(args.interval),
                       "--seconds", str(args.seconds), "--protocol", args.protocol]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                results.setdefault((rate, impl, mode), []).append(r)
                print(f"{run:>3} {rate:>8.0f} {impl:>8} {mode:>9} {r['probesPerSecond']:>9} "
                      f"{r['cpuMsPerProbe']:>12.3f} {r['systemMsPerProbe']:>9.3f} "
                      f"{r['cpuShareOfACore']:>6.2f} "
                      f"{r['failures']:>5} {r['serverConnections']:>12} "
                      f"{r['serverCpuShare']:>11.2f}", flush=True)
    print()
    print("min / median over runs")
    print(f"{'target/s':>8} {'impl':>8} {'server':>9} {'probes/s':>15} {'CPU ms/probe':>15} "
          f"{'core':>11} {'baseline/this':>14}")
    summary = []
    for (rate, impl, mode), runs in results.items():
        cpu_min, cpu_med = spread([r["cpuMsPerProbe"] for r in runs])
        rate_min, rate_med = spread([r["probesPerSecond"] for r in runs])
        core_min, core_med = spread([r["cpuShareOfACore"] for r in runs])
        base = results.get((rate, "baseline", "keepalive"))
        ratio = statistics.median([r["cpuMsPerProbe"] for r in base]) / cpu_med if base else 0
        print(f"{rate:>8.0f} {impl:>8} {mode:>9} {rate_min:>7.0f}/{rate_med:<7.0f} "
              f"{cpu_min:>7.3f}/{cpu_med:<7.3f} {core_min:>5.2f}/{core_med:<5.2f} "
              f"{ratio:>13.1f}x")
        summary.append({"rate": rate, "impl": impl, "server": mode, "runs": runs})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
