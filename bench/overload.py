"""Overload: an open-loop generator offering a fixed rate to a live ``scaleset serve``.

For each ``--in-flight`` value, starts a server (simulated driver, TLS, on a free
loopback port) with ``--max-requests-in-flight`` set to it, creates 3 scale sets of 10
instances, then sends ``--rate`` requests per second for ``--seconds`` whatever the
answers (open loop: a slow server is not given a slower client): 45 % GET scale set,
45 % GET its instances with their instance views, 10 % PATCH its tags. Latency is
measured from the moment each request was due, so queueing in the generator counts too.
Prints, per value, the admitted requests' p50/p99/max, the count of 429s (with their
Retry-After) and other answers, and the machine.

    python bench/overload.py                               # 200 req/s, 20 s, several bounds
    python bench/overload.py --in-flight 16 --in-flight 100000 --seconds 20 --rate 200

The generator is a lean HTTP/1.1 client on keep-alive connections (``Wire``): it shares
the cores with the server, and httpx cost it more per request than the server's answers
(with httpx the generator, not the server, was what limited the rate). Numbers vary with
whatever else the machine runs; compare the bounds within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.server import Server, running_server, trusting

V = "?api-version=2026-04-01"
SETS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets"
LB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
SCALE_SETS = 3


@dataclass
class Outcome:
    admitted: list[float] = field(default_factory=list)
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    retry_after: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    late_start: float = 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if values else 0


def prepare(server: Server) -> None:
    with server.http() as http:
        http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"}).raise_for_status()
        http.put(f"{LB}?api-version=2024-05-01", json={"location": "westus", "properties": {
            "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 22}}]}}
        ).raise_for_status()
        for i in range(SCALE_SETS):
            http.put(f"{SETS}/v{i}{V}", json={
                "location": "westus", "sku": {"capacity": 10},
                "properties": {"upgradePolicy": {"mode": "Manual"},
                               "virtualMachineProfile": {"storageProfile": {"imageReference": {
                                   "publisher": "Canonical", "offer": "UbuntuServer",
                                   "sku": "18.04-LTS", "version": "latest"}},
                                   "networkProfile": {"healthProbe": {
                                       "id": f"{LB}/probes/p"}}}}}).raise_for_status()
        time.sleep(2)  # the instances come up (simulated): the reads below carry them


class _Closed(Exception):
    """The connection ended before an answer."""


class Wire:
    """A lean HTTP/1.1 client over keep-alive connections (TLS unless insecure): the load
    generator shares the cores with the server, so each request must cost it little
    (httpx costs more per request than the server's cheapest answers)."""

    def __init__(self, server: Server) -> None:
        url = httpx.URL(server.endpoint)
        self.host, self.port = url.host, url.port or 443
        self.ssl = trusting(server.ca) if url.scheme == "https" else None
        self.token = server.token
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def raw(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Length: {len(body)}\r\n"
                + ("Content-Type: application/json\r\n" if body else "") + "\r\n")
        return head.encode() + body

    async def send(self, request: bytes) -> tuple[int, dict[str, str]]:
        """The answer's status and headers (the body is read and dropped)."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, request)
            except (ConnectionError, asyncio.IncompleteReadError, _Closed):
                continue  # the server closed this idle connection (keep-alive timeout)
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        return await self._exchange(reader, writer, request)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> tuple[int, dict[str, str]]:
        try:
            writer.write(request)
            first = await reader.readline()
            if not first:
                raise _Closed
            status = int(first.split(b" ", 2)[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, headers

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def offer(server: Server, rate: float, seconds: float) -> Outcome:
    outcome = Outcome()
    rng = random.Random(12)
    wire = Wire(server)
    requests = [(wire.raw("GET", f"{SETS}/v{i}{V}"),
                 wire.raw("GET", f"{SETS}/v{i}/virtualMachines{V}&$expand=instanceView"),
                 wire.raw("PATCH", f"{SETS}/v{i}{V}", b'{"tags": {"n": "1"}}'))
                for i in range(SCALE_SETS)]

    async def one(due: float, n: int) -> None:
        pick = rng.random()
        kinds = requests[n % SCALE_SETS]
        request = kinds[0] if pick < 0.45 else kinds[1] if pick < 0.9 else kinds[2]
        try:
            status, headers = await wire.send(request)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                _Closed) as exc:
            outcome.errors[type(exc).__name__] += 1
            return
        outcome.codes[status] += 1
        if status == 429:
            outcome.retry_after[headers.get("retry-after", "none")] += 1
        else:
            outcome.admitted.append(time.monotonic() - due)

    start = time.monotonic() + 0.2
    tasks = []
    for n in range(int(rate * seconds)):
        due = start + n / rate
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            outcome.late_start = max(outcome.late_start, -pause)
        tasks.append(asyncio.create_task(one(due, n)))
    await asyncio.gather(*tasks)
    wire.close()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--in-flight", type=int, action="append",
                        help="the server's --max-requests-in-flight (repeatable; default: "
                             "8, 16, 32, 64 and 100000 = no shedding)")
    args = parser.parse_args()
    bounds = args.in_flight or [8, 16, 32, 64, 100_000]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"offered: {args.rate:.0f} req/s for {args.seconds:.0f} s (open loop), "
          "45% GET scale set, 45% GET instances+views, 10% PATCH tags; latency from due time")
    print(f"{'in-flight':>10} {'admitted':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'429':>6} {'other':>18} {'errors':>10}")
    for bound in bounds:
        with tempfile.TemporaryDirectory() as tmp, running_server(
                Path(tmp), extra=("--max-requests-in-flight", str(bound))) as server:
            prepare(server)
            outcome = asyncio.run(offer(server, args.rate, args.seconds))
        other = {c: n for c, n in sorted(outcome.codes.items()) if c != 429}
        print(f"{bound:>10} {len(outcome.admitted):>9} "
              f"{percentile(outcome.admitted, 50):>7.3f} {percentile(outcome.admitted, 99):>7.3f} "
              f"{max(outcome.admitted, default=0):>7.3f} {outcome.codes[429]:>6} "
              f"{other!s:>18} {str(dict(outcome.errors)) if outcome.errors else '-':>10}"
              + (f"  Retry-After {dict(outcome.retry_after)}" if outcome.retry_after else "")
              + (f"  (generator late by up to {outcome.late_start:.2f} s)"
                 if outcome.late_start > 0.05 else ""), flush=True)


if __name__ == "__main__":
    main()
