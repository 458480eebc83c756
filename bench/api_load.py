"""API load: GET of a scale set from a live ``scaleset serve``, beside a trivial FastAPI app.

Starts ``scaleset serve`` (simulated driver, SQLite, its own TLS certificate) on a free
loopback port with one scale set, and a trivial FastAPI app (one route answering a small
JSON) under the same uvicorn settings and the same certificate. For each of them, in the
same run:

* closed loop: ``--clients`` connections each sending the next GET as soon as the last
  answer arrived, for ``--seconds``: requests per second, p50, p99;
* open loop: GETs at a fixed arrival rate (``--rate``, 300/s by default) spread over
  ``--open-connections`` connections; latency counts from each request's *scheduled*
  send time, so a stalled server is not hidden by a client that waited for it
  (coordinated omission).

The clients are raw TLS sockets (HTTP/1.1, keep-alive, one request in flight per
connection) in ``--processes`` processes, so the client is not the bottleneck; their CPU
per second of wall time is printed beside the server's. Each measurement runs
``--repeat`` times (3) and the min and median are shown. The machine line comes first.

    python bench/api_load.py                        # closed + open loop, 3 repeats
    python bench/api_load.py --seconds 5 --rate 300 --clients 8
    python bench/api_load.py --mixed --seconds 15   # the older mixed read/write load
    python bench/api_load.py --in-process           # CPU per GET, no HTTP, no TLS

``--in-process`` drives the API's ASGI app directly (the one ``create_app`` builds, over an
SQLite file, with the same scale set), ``--clients`` requests at a time on one event loop,
and prints the process's CPU per GET, all threads counted: an A/B of the API's own code
that neither the client processes nor a busy machine's other load blur.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_seconds, machine, spread
from tests.e2e.server import Server, running_server

V = "?api-version=2026-04-01"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
SETS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets"
LB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"
TRIVIAL_PATH = "/ping"


# -- the trivial app, in its own process ------------------------------------------------

def _serve_trivial(cert: str, key: str, port_file: str) -> None:
    """A FastAPI app with one route, under serve's uvicorn settings (server/main.py)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get(TRIVIAL_PATH)
    def ping() -> dict[str, str]:  # sync, as most of scaleset's routes are (the baseline)
        return {"status": "ok", "name": "trivial"}

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            log_config=None, ssl_certfile=cert, ssl_keyfile=key,
                            access_log=False, timeout_graceful_shutdown=2)
    sock = config.bind_socket()
    Path(port_file).write_text(str(sock.getsockname()[1]))
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def trivial_server(tls_dir: Path, tmp: Path) -> Iterator[tuple[int, int]]:
    """(port, pid) of the trivial app, stopped afterwards."""
    port_file = tmp / "trivial.port"
    process = subprocess.Popen([sys.executable, __file__, "--trivial-app",
                                str(tls_dir / "server.pem"), str(tls_dir / "server.key"),
                                str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the trivial app did not start")
            time.sleep(0.05)
        time.sleep(0.3)  # bound before uvicorn's loop accepts: let it start
        yield int(port_file.read_text()), process.pid
    finally:
        process.terminate()
        process.wait(10)


# -- the client -----------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection over TLS; one request in flight."""

    def __init__(self, port: int, ca: str, request: bytes) -> None:
        context = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.request = request
        self.buffer = b""

    def get(self) -> int:
        """Send the request, read the whole answer; its status code."""
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._more()
        self.buffer = self.buffer[length:]
        return status

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def _client_process(spec: dict[str, Any]) -> dict[str, Any]:
    """One load process: ``threads`` connections, closed or open loop; latencies in ms."""
    request = (f"GET {spec['path']} HTTP/1.1\r\nHost: 127.0.0.1:{spec['port']}\r\n"
               f"Authorization: Bearer {spec['token']}\r\nAccept: application/json\r\n"
               "\r\n").encode()
    connections = [Connection(spec["port"], spec["ca"], request)
                   for _ in range(spec["threads"])]
    for conn in connections:
        conn.get()  # the TLS handshake and a first answer before the clock starts
    latencies: list[list[float]] = [[] for _ in connections]
    codes: list[collections.Counter[int]] = [collections.Counter() for _ in connections]
    start, stop = spec["start"], spec["start"] + spec["seconds"]

    def closed(k: int) -> None:
        conn, out, seen = connections[k], latencies[k], codes[k]
        while (now := time.time()) < stop:
            seen[conn.get()] += 1
            out.append((time.time() - now) * 1000)

    def open_loop(k: int) -> None:
        # Thread k of all the threads sends the requests k, k+T, k+2T ... of one schedule.
        conn, out, seen = connections[k], latencies[k], codes[k]
        total, rate = spec["all_threads"], spec["rate"]
        index = spec["first_thread"] + k
        while (due := start + index / rate) < stop:
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            seen[conn.get()] += 1
            out.append((time.time() - due) * 1000)
            index += total

    while time.time() < start:
        time.sleep(min(0.01, max(0.0, start - time.time())))
    used = os.times()
    threads = [threading.Thread(target=closed if spec["mode"] == "closed" else open_loop,
                                args=(k,)) for k in range(len(connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.times()
    for conn in connections:
        conn.close()
    merged: collections.Counter[int] = collections.Counter()
    for c in codes:
        merged.update(c)
    return {"latencies": [x for xs in latencies for x in xs], "codes": dict(merged),
            "cpu": (after.user - used.user) + (after.system - used.system)}


def measure(pool: Any, *, mode: str, port: int, server_pid: int, path: str, token: str,
            ca: str, seconds: float, processes: int, threads: int, rate: float
            ) -> dict[str, Any]:
    """One closed- or open-loop measurement against one server."""
    start = time.time() + 1.0  # every process connected and waiting
    specs = [{"mode": mode, "port": port, "path": path, "token": token, "ca": ca,
              "seconds": seconds, "threads": threads, "start": start, "rate": rate,
              "all_threads": processes * threads, "first_thread": p * threads}
             for p in range(processes)]
    async_result = pool.map_async(_client_process, specs)
    while time.time() < start:
        time.sleep(0.01)
    server_before = cpu_seconds(server_pid)
    results = async_result.get(seconds + 60)
    server_cpu = cpu_seconds(server_pid) - server_before
    latencies = sorted(x for r in results for x in r["latencies"])
    codes: collections.Counter[int] = collections.Counter()
    for r in results:
        codes.update(r["codes"])
    n = len(latencies)
    return {
        "requests": n, "reqPerSecond": n / seconds,
        "p50": latencies[n // 2] if n else float("nan"),
        "p99": latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "max": latencies[-1] if n else float("nan"),
        "codes": dict(codes),
        # Close to the measured window: the server's counter is read right after the join.
        "serverCpu": server_cpu / seconds,
        "clientCpu": sum(r["cpu"] for r in results) / seconds,
    }


# -- the scaleset side ------------------------------------------------------------------

def prepare(server: Server) -> str:
    """One scale set of 2 instances, provisioned; the path of its GET."""
    with server.http() as http:
        http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"}).raise_for_status()
        # A rolling scale set's health probe must exist before the scale set names it.
        http.put(f"{LB}?api-version=2024-05-01", json={"location": "westus", "properties": {
            "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 22}}]}}
        ).raise_for_status()
        path = f"{SETS}/v0{V}"
        http.put(path, json={
            "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 2},
            "properties": {"upgradePolicy": {"mode": "Rolling"},
                           "virtualMachineProfile": {
                               "storageProfile": {"imageReference": {
                                   "publisher": "Canonical", "offer": "UbuntuServer",
                                   "sku": "18.04-LTS", "version": "latest"}},
                               "networkProfile": {"healthProbe": {"id": f"{LB}/probes/p"}}}}}
        ).raise_for_status()
        deadline = time.monotonic() + 30
        while http.get(path).json()["properties"]["provisioningState"] != "Succeeded":
            if time.monotonic() > deadline:
                raise RuntimeError("the scale set did not provision within 30 s")
            time.sleep(0.2)
    return path


def _row(label: str, runs: list[dict[str, Any]]) -> str:
    def cell(key: str, fmt: str) -> str:
        low, mid = spread([r[key] for r in runs])
        return f"{format(low, fmt)} / {format(mid, fmt)}"

    return (f"{label:<34} {cell('reqPerSecond', '.0f'):>13} {cell('p50', '.2f'):>13} "
            f"{cell('p99', '.2f'):>13} {cell('serverCpu', '.2f'):>11} "
            f"{cell('clientCpu', '.2f'):>11}  codes {runs[-1]['codes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop requests/s")
    parser.add_argument("--open-connections", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--json", action="store_true", help="also print every run as JSON")
    parser.add_argument("--mixed", action="store_true",
                        help="the mixed read/write load during a rollout instead")
    parser.add_argument("--threads", type=int, default=8, help="--mixed: client threads")
    parser.add_argument("--in-process", action="store_true",
                        help="CPU per GET of the ASGI app driven directly, no HTTP")
    parser.add_argument("--trivial-app", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trivial_app:
        _serve_trivial(*args.trivial_app)
        return
    print(f"machine: {machine()}", flush=True)
    if args.in_process:
        asyncio.run(in_process(args.clients, args.repeat, args.seconds))
        return
    if args.mixed:
        mixed(args.seconds, args.threads)
        return
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        path = prepare(server)
        port = int(server.endpoint.rsplit(":", 1)[1])
        tls_dir = server.data_dir / "tls"
        with trivial_server(tls_dir, Path(tmp)) as (trivial_port, trivial_pid), \
                multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            targets = {"trivial FastAPI": (trivial_port, trivial_pid, TRIVIAL_PATH),
                       "scaleset GET scale set": (port, server.process.pid, path)}
            for _ in range(args.repeat):
                for name, (p, pid, target_path) in targets.items():
                    common = dict(port=p, server_pid=pid, path=target_path,
                                  token=server.token, ca=str(tls_dir / "ca.pem"),
                                  seconds=args.seconds, processes=args.processes)
                    per_process = max(1, args.clients // args.processes)
                    runs[f"{name}, closed {per_process * args.processes}"].append(
                        measure(pool, mode="closed", threads=per_process, rate=0, **common))
                    open_threads = max(1, args.open_connections // args.processes)
                    runs[f"{name}, open {args.rate:.0f}/s"].append(
                        measure(pool, mode="open", threads=open_threads, rate=args.rate,
                                **common))
    print(f"{args.repeat} runs of {args.seconds:g} s each; min / median of the runs; "
          f"latency in ms; CPU in cores (server / {args.processes} client processes)")
    print(f"{'':<34} {'req/s':>13} {'p50 ms':>13} {'p99 ms':>13} {'server CPU':>11} "
          f"{'client CPU':>11}")
    for label, measured in runs.items():
        print(_row(label, measured))
    closed = [k for k in runs if ", closed" in k]
    ratios = [s["reqPerSecond"] / t["reqPerSecond"]
              for t, s in zip(runs[closed[0]], runs[closed[1]], strict=True)]
    low, mid = spread(ratios)
    print(f"closed loop, scaleset / trivial req/s: min {low:.2f}, median {mid:.2f} "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    opened = [k for k in runs if ", open" in k][1]
    p99s = [r["p99"] for r in runs[opened]]
    print(f"open loop at {args.rate:.0f}/s, scaleset p99: min {min(p99s):.2f} ms, median "
          f"{statistics.median(p99s):.2f} ms")
    if args.json:
        print(json.dumps(runs))


# -- in process (--in-process) ------------------------------------------------------------

async def _asgi_get(app: Any, path: str, token: str, method: str = "GET",
                    body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would hand it over: (status, body)."""
    route, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "https", "path": route, "raw_path": route.encode(),
             "query_string": query.encode(), "root_path": "",
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 443),
             "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode()),
                         (b"accept", b"application/json"),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    delivered = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the app never waits for one here
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def in_process(clients: int, repeat: int, seconds: float) -> None:
    """CPU per GET of a scale set, the ASGI app driven directly (``--in-process``)."""
    from scaleset.api.app import create_app
    from scaleset.api.context import ApiContext
    from scaleset.security import tokens
    from scaleset.store.database import make_engine, migrate
    from scaleset.store.repository import Store
    from tests.integration.test_api import RG, body
    from tests.support import World

    path = f"{RG}/virtualMachineScaleSets/vmss1{V}"
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scaleset.db")
        migrate(engine)
        store = Store(engine)
        world = World.create(store)
        app = create_app(ApiContext(store=store, clock=world.clock, settings=world.settings))
        token = tokens.create_token(store, role="contributor", now=world.clock.now()).token
        status, answer = await _asgi_get(app, path, token, "PUT", json.dumps(body(2)).encode())
        assert status == 201, answer
        world.settle()
        await _asgi_get(app, path, token)  # the answer is kept from here on
        per_get: list[float] = []
        for _ in range(repeat):
            done = 0
            stop = time.monotonic() + seconds

            async def client(stop: float) -> None:
                nonlocal done
                while time.monotonic() < stop:
                    code, _ = await _asgi_get(app, path, token)
                    assert code == 200, code
                    done += 1

            used = time.process_time()
            await asyncio.gather(*(client(stop) for _ in range(clients)))
            per_get.append((time.process_time() - used) / done * 1e6)
        store.close()
    low, mid = spread(per_get)
    print(f"in process, {clients} at a time, {repeat} runs of {seconds:g} s: CPU per GET of a "
          f"scale set min {low:.0f} us, median {mid:.0f} us "
          f"(runs: {', '.join(f'{x:.0f}' for x in per_get)})")


# -- the older mixed load (--mixed) -------------------------------------------------------

def mixed(seconds: float, threads: int) -> None:
    """5 scale sets of 20 rolling out while clients GET, list instances and PATCH tags."""
    codes: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        with server.http() as http:
            http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"})
            # A scale set's health probe must exist before the scale set names it.
            http.put(f"{LB}?api-version=2024-05-01", json={"location": "westus", "properties": {
                "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 22}}]}})
            for i in range(5):
                http.put(f"{SETS}/v{i}{V}", json={
                    "location": "westus", "sku": {"capacity": 20},
                    "properties": {"upgradePolicy": {
                        "mode": "Rolling",
                        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
                        "virtualMachineProfile": {"storageProfile": {"imageReference": {
                            "publisher": "Canonical", "offer": "UbuntuServer",
                            "sku": "18.04-LTS", "version": "latest"}},
                            "networkProfile": {"healthProbe": {"id": f"{LB}/probes/p"}}}}})
            time.sleep(3)
            http.put(f"{IMAGES}/1.1.0{V}", json={"location": "westus"})
        stop = time.monotonic() + seconds

        def client(n: int) -> None:
            base = f"{SETS}/v{n % 5}"
            with server.http() as http:
                while time.monotonic() < stop:
                    seen = [http.get(base + V).status_code,
                            http.get(f"{base}/virtualMachines{V}&$expand=instanceView").status_code,
                            http.get(f"{base}/rollingUpgrades/latest{V}").status_code,
                            http.patch(base + V, json={"tags": {"n": str(n)}}).status_code]
                    with lock:
                        codes.update(seen)

        started = time.monotonic()
        workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        elapsed = time.monotonic() - started
        with server.http() as http:
            runs = [http.get(f"{SETS}/v{i}/rollingUpgrades/latest{V}").json()["properties"]
                    ["runningStatus"]["code"] for i in range(5)]
    total = sum(codes.values())
    print(f"{total} requests in {elapsed:.1f} s = {total / elapsed:.0f} req/s with "
          f"{threads} clients; status codes {dict(codes)}; runs {runs}")


if __name__ == "__main__":
    main()
