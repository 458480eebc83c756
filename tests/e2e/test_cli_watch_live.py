"""Watching rollouts with the CLI against a live ``scaleset serve`` (simulated driver).

``rolling-upgrade get-latest --watch`` follows an automatic run it did not start,
in plain lines (the output is a pipe here, as in CI), and its exit code says how
the run ended. ``vmss events --follow`` keeps every event, once, in order, across
a connection killed under it and across a restart of the server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, running_server
from tests.support import wait_for

SCALESET = str(Path(sys.executable).with_name("scaleset"))
IMMEDIATE = ("--rollout-timing", "immediate")  # automatic runs start as soon as published


def env_for(server: Server) -> dict[str, str]:
    return {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
            "SCALESET_TOKEN": server.token}


def cli(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([SCALESET, *args], capture_output=True, text=True,
                            env=env_for(server), timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result




def auto_scale_set(server: Server, name: str, image: tuple[str, str, str]) -> None:
    """``name`` in ``rg``: 5 instances, automatic OS upgrades, batches of 2, healthy first."""
    publisher, offer, sku = image
    cli(server, "vm", "image", "publish", "-l", "westus", "-p", publisher, "-f", offer,
        "-s", sku, "--version", "1.0.0")
    cli(server, "network", "lb", "create", "-g", "rg", "-n", "lb")
    probe = json.loads(cli(server, "network", "lb", "probe", "create", "-g", "rg",
                           "--lb-name", "lb", "-n", "http", "--protocol", "Http", "--port",
                           "80", "--path", "/health").stdout)["id"]
    cli(server, "vmss", "create", "-g", "rg", "-n", name, "--image",
        f"{publisher}:{offer}:{sku}:latest", "--instance-count", "5",
        "--upgrade-policy-mode", "Rolling", "--health-probe", probe,
        "--enable-auto-os-upgrade", "true", "--max-batch-instance-percent", "40",
        "--max-unhealthy-instance-percent", "50")
    with server.http() as http:
        path = (f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                f"providers/Microsoft.Compute/virtualMachineScaleSets/{name}/rollout")

        def healthy() -> bool:
            body = http.get(path, params={"api-version": "2024-07-01"}).json()
            return all(i["health"] == "Healthy" for i in body["instances"]) \
                and len(body["instances"]) == 5
        wait_for(healthy, timeout=30, what=f"5 healthy instances in {name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("watch"), extra=IMMEDIATE) as s:
        yield s


def test_get_latest_watch_follows_an_automatic_run_to_completed(server: Server) -> None:
    image = ("Canonical", "UbuntuServer", "18.04-LTS")
    auto_scale_set(server, "web", image)
    # No run yet: the watch waits for one. Publishing starts the automatic run.
    watcher = subprocess.Popen(
        [SCALESET, "vmss", "rolling-upgrade", "get-latest", "-g", "rg", "-n", "web",
         "--watch", "--timeout", "90"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env_for(server))
    try:
        assert watcher.stderr is not None
        assert watcher.stderr.readline() == "no rolling upgrade yet\n"
        cli(server, "vm", "image", "publish", "-l", "westus", "-p", image[0], "-f", image[1],
            "-s", image[2], "--version", "1.1.0")
        out, err = watcher.communicate(timeout=100)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, out + err
    assert json.loads(out)["properties"]["runningStatus"]["code"] == "Completed"
    lines = err.splitlines()
    assert re.fullmatch(r"rolling upgrade \S+ \(OSImage, started by Platform\) to image "
                        r"1\.1\.0: RollingForward", lines[0]), err
    # Batches of 2 out of 5: three of them, each said as it ended, in order.
    done = [line for line in lines if re.fullmatch(r"batch \d/3 done", line)]
    assert done and done[-1] == "batch 3/3 done", err
    assert done == sorted(done)
    assert any(re.fullmatch(r"batch [23]/3 started: instances .+", line) for line in lines)
    assert "progress: succeeded 5 · failed 0 · in progress 0 · pending 0" in lines
    assert lines[-1] == "status: Completed"
    assert "\x1b" not in err  # not a terminal: no colours, no cursor movement


def test_get_latest_watch_exits_1_when_the_automatic_run_faults(server: Server) -> None:
    image = ("Contoso", "WebApp", "1")
    auto_scale_set(server, "bad", image)
    cli(server, "vm", "image", "publish", "-l", "westus", "-p", image[0], "-f", image[1],
        "-s", image[2], "--version", "2.0.0", "--simulate-unhealthy")
    result = cli(server, "vmss", "rolling-upgrade", "get-latest", "-g", "rg", "-n", "bad",
                 "--watch", "--timeout", "90", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Faulted"
    lines = result.stderr.splitlines()
    # An automatic run rolls its failed batch back: each instance says so, with the cause.
    assert any(re.fullmatch(r"instance \d: rolled back: not healthy within 3 s of its "
                            r"upgrade.*", line) for line in lines), lines
    assert "gate maxUnhealthyUpgradedInstancePercent 100% (2/2) > 20% exceeded" in lines
    assert lines[-2] == "status: Faulted"
    assert lines[-1].startswith("error (MaxUnhealthyUpgradedInstancePercentExceeded")


# -- the event stream across disconnects -----------------------------------------------------

class Proxy:
    """A TCP relay on 127.0.0.1 that can cut every connection and change its upstream."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()  # the server is down: the CLI sees a dropped connection
                continue
            with self._lock:
                self.accepted += 1
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Kill every connection under way, as a broken network would."""
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def listed_ids(server: Server, name: str) -> list[str]:
    out = cli(server, "vmss", "events", "-g", "rg", "-n", name, "-o", "json").stdout
    return [e["id"] for e in json.loads(out)]


def port(server: Server) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_events_follow_shows_every_event_once_across_a_cut_and_a_restart(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "serve"
    data_dir.mkdir()
    proxy = Proxy(upstream=0)
    shown: list[dict[str, Any]] = []
    follower: subprocess.Popen[str] | None = None
    try:
        with running_server(data_dir, extra=IMMEDIATE) as first:
            auto_scale_set(first, "web", ("Canonical", "UbuntuServer", "18.04-LTS"))
            proxy.upstream = port(first)
            follower = subprocess.Popen(
                [SCALESET, "--server", f"https://127.0.0.1:{proxy.port}", "--ca-file",
                 str(first.ca), "vmss", "events", "-g", "rg", "-n", "web", "--follow",
                 "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=env_for(first))

            def read(stream: Any) -> None:
                for line in stream:
                    shown.append(json.loads(line))
            threading.Thread(target=read, args=(follower.stdout,), daemon=True).start()

            def caught_up(server: Server) -> bool:
                return [e["id"] for e in shown] == listed_ids(server, "web")

            wait_for(lambda: caught_up(first), timeout=30, what="the backlog")
            backlog = len(shown)

            # 1. The connection is killed under the CLI; events happen before it is back.
            proxy.cut()
            cli(first, "vmss", "update", "-g", "rg", "-n", "web", "--set", "sku.capacity=7")
            wait_for(lambda: proxy.accepted >= 2 and caught_up(first), timeout=30,
                     what="the events made while cut off")
            assert len(shown) > backlog
            before_restart = len(shown)
        # 2. The server stopped (its side ended the stream); a new one serves the same data.
        with running_server(data_dir, extra=IMMEDIATE) as second:
            proxy.upstream = port(second)
            cli(second, "vmss", "update", "-g", "rg", "-n", "web", "--set", "sku.capacity=4")
            wait_for(lambda: len(shown) > before_restart and caught_up(second), timeout=60,
                     what="the events after the restart")
            everything = listed_ids(second, "web")
            follower.send_signal(signal.SIGINT)  # Ctrl-C
            _, err = follower.communicate(timeout=15)
        assert follower.returncode == 0, err
        ids = [e["id"] for e in shown]
        assert len(ids) == len(set(ids)), "an event was shown twice"
        assert ids == everything, "an event was missed or shown out of order"
        kinds = {e["kind"] for e in shown}
        assert {"ScaleSetCreated", "InstanceCreated", "InstanceDeleted"} <= kinds
        assert proxy.accepted >= 3  # the first connection, after the cut, after the restart
    finally:
        if follower is not None:
            follower.kill()
        proxy.close()
