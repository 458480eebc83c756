"""A full filesystem under ``serve``'s data directory (a small tmpfs).

What a user expects of a control plane whose disk fills up: reads keep
answering 200; writes are refused with 507 ``InsufficientStorage`` in ARM's
envelope with ``Retry-After``; ``/healthz`` says so; nothing is corrupted: once
space is freed, writes work again without a restart and the database passes
SQLite's ``PRAGMA integrity_check``. Skipped, saying why, where the test cannot
mount a tmpfs (not root, or mount not permitted).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import running_server
from tests.fault.conftest import hard_timeout, kill_all_under

SUB = "00000000-0000-0000-0000-000000000001"
LB = (f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Network/"
      "loadBalancers/lb1")
NETWORK = {"api-version": "2024-05-01"}
SIZE = "48m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs mounted on a fresh directory; unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs needs root; this test runs as uid {os.geteuid()}")
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs",
                              str(mount_point)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        kill_all_under(mount_point)
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def _balancer(port: int) -> dict[str, Any]:
    return {"location": "westus", "sku": {"name": "Standard"}, "properties": {"probes": [
        {"name": "http", "properties": {"protocol": "Http", "port": port,
                                        "requestPath": "/health"}}]}}


def _fill(directory: Path) -> int:
    """Write zeros under ``directory`` until the filesystem refuses; the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with (directory / "filler").open("wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Smaller pieces too: the last megabyte may have been refused whole.
    with (directory / "filler-tail").open("wb", buffering=0) as tail:
        try:
            while True:
                written += tail.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return written


@hard_timeout(90)
def test_a_full_disk_keeps_reads_refuses_writes_with_507_and_recovers(
        small_disk: Path) -> None:
    with running_server(small_disk, extra=("--insecure-http",)) as server, \
            httpx.Client(base_url=server.endpoint, timeout=15, trust_env=False,
                         headers={"Authorization": f"Bearer {server.token}"}) as http:
        created = http.put(LB, params=NETWORK, json=_balancer(8080))
        assert created.status_code in (200, 201), created.text
        healthy = http.get("/healthz")
        assert healthy.status_code == 200, healthy.text

        filled = _fill(small_disk)
        read = http.get(LB, params=NETWORK)
        write = http.put(LB, params=NETWORK, json=_balancer(8081))
        health = http.get("/healthz")
        print(f"\nfault suite, full disk: {filled >> 20} MiB filler on a {SIZE} tmpfs; "
              f"GET {read.status_code}, PUT {write.status_code} "
              f"(Retry-After {write.headers.get('Retry-After')!r}), "
              f"/healthz {health.status_code} {health.text[:120]}")
        assert read.status_code == 200, read.text
        assert read.json()["properties"]["probes"][0]["properties"]["port"] == 8080
        assert write.status_code == 507, write.text
        assert write.json()["error"]["code"] == "InsufficientStorage", write.text
        assert write.json()["error"]["message"]
        assert int(write.headers["Retry-After"]) > 0
        assert health.status_code != 200 or health.json() != healthy.json(), \
            "/healthz should report the full disk"

        (small_disk / "filler").unlink()
        (small_disk / "filler-tail").unlink()
        deadline = time.monotonic() + 15
        while (again := http.put(LB, params=NETWORK, json=_balancer(8082))).status_code == 507:
            assert time.monotonic() < deadline, "writes did not recover after space was freed"
            time.sleep(0.5)
        assert again.status_code in (200, 201), again.text
        after = http.get(LB, params=NETWORK)
        assert after.json()["properties"]["probes"][0]["properties"]["port"] == 8082
        # /healthz may keep saying so for a while after a failed write; it must clear alone.
        deadline = time.monotonic() + 40
        while (status := http.get("/healthz")).json().get("status") != healthy.json()["status"]:
            assert time.monotonic() < deadline, f"/healthz did not recover: {status.text}"
            time.sleep(1)
        assert status.status_code == 200
    with sqlite3.connect(small_disk / "scaleset.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
