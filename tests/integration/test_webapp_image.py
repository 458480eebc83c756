"""The example webapp image versions, run as real processes the way the process driver runs them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "images" / "webapp"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0"]
START_TIMEOUT = 10.0


@dataclass
class Webapp:
    process: subprocess.Popen[bytes]
    url: str
    ip: str
    port: int
    console: Path
    errors: Path
    disks: list[Path]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5.0)

    def put(self, path: str, body: bytes) -> httpx.Response:
        return httpx.put(self.url + path, content=body, timeout=5.0)


def free_port(ip: str) -> int:
    with socket.socket() as probe:
        probe.bind((ip, 0))
        port: int = probe.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def start_webapp(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Webapp]:
    """Start a version's app.py with its OS disk (a copy of the image) as working directory."""
    started: list[subprocess.Popen[bytes]] = []

    def stop_all() -> None:
        for process in started:
            stop(process)

    request.addfinalizer(stop_all)

    def start(version: str, *, ip: str = "127.0.0.1", data_disks: int = 2) -> Webapp:
        name = f"{version}-{len(started)}"
        os_disk = shutil.copytree(EXAMPLES / version, tmp_path / name / "os")
        disks = [tmp_path / name / f"data{lun}" for lun in range(data_disks)]
        for disk in disks:
            disk.mkdir()
        port = free_port(ip)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("SCALESET_", "WEBAPP_"))}
        env.update(SCALESET_PRIVATE_IP=ip, WEBAPP_PORT=str(port),
                   SCALESET_INSTANCE_ID=f"vmss-web_{len(started)}",
                   SCALESET_DATA_DISKS=os.pathsep.join(str(disk) for disk in disks))
        console, errors = tmp_path / name / "console.log", tmp_path / name / "stderr.log"
        with console.open("wb") as out, errors.open("wb") as err:
            process = subprocess.Popen([sys.executable, "app.py"], cwd=os_disk, env=env,
                                       stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        started.append(process)
        app = Webapp(process, f"http://{ip}:{port}", ip, port, console, errors, disks)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"app.py exited early: {errors.read_text()}"
            try:
                app.get("/")
                return app
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{version} did not answer in time"
                time.sleep(0.05)

    return start


@pytest.mark.parametrize("version", VERSIONS)
def test_the_home_page_names_the_version_and_the_instance(
        version: str, start_webapp: Callable[..., Webapp]) -> None:
    app = start_webapp(version)
    page = app.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"webapp {version}" in page.text
    assert "vmss-web_0" in page.text
    assert app.get("/nowhere").status_code == 404


@pytest.mark.parametrize(("version", "status", "state"), [
    ("1.0.0", 200, "Healthy"), ("1.1.0", 200, "Healthy"), ("1.2.0", 500, "Unhealthy")])
def test_health_is_healthy_except_in_the_broken_release(
        version: str, status: int, state: str, start_webapp: Callable[..., Webapp]) -> None:
    app = start_webapp(version)
    health = app.get("/health")
    assert health.status_code == status
    assert health.headers["content-type"] == "application/json"
    assert health.json() == {"ApplicationHealthState": state}


@pytest.mark.parametrize("version", VERSIONS)
def test_data_written_over_http_lands_on_the_first_data_disk(
        version: str, start_webapp: Callable[..., Webapp]) -> None:
    app = start_webapp(version)
    assert app.put("/data/notes.txt", b"kept across upgrades\n").status_code == 201
    assert (app.disks[0] / "notes.txt").read_bytes() == b"kept across upgrades\n"
    assert not (app.disks[1] / "notes.txt").exists()

    back = app.get("/data/notes.txt")
    assert back.status_code == 200
    assert back.content == b"kept across upgrades\n"
    assert app.get("/data/missing.txt").status_code == 404
    for bad in ["/data/a..b", "/data/sub/file", "/data/"]:
        assert app.put(bad, b"x").status_code == 400
        assert app.get(bad).status_code == 400


def test_without_a_data_disk_data_requests_conflict(start_webapp: Callable[..., Webapp]) -> None:
    app = start_webapp("1.1.0", data_disks=0)
    assert app.put("/data/notes.txt", b"x").status_code == 409
    assert app.get("/data/notes.txt").status_code == 409


def test_it_listens_on_the_private_ip_logs_one_line_and_stops_on_sigterm(
        start_webapp: Callable[..., Webapp]) -> None:
    app = start_webapp("1.1.0", ip="127.0.0.7")
    for _ in range(5):
        app.get("/health")
    app.get("/nowhere")

    app.process.send_signal(signal.SIGTERM)
    assert app.process.wait(timeout=5) == 0
    assert app.console.read_text() == f"webapp 1.1.0 listening on 127.0.0.7:{app.port}\n"
    assert app.errors.read_text() == ""
