"""A real ``scaleset serve`` in a subprocess, on a free loopback port, stopped by the test."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TOKEN = "sst_e2e0test_contributor-token-for-the-e2e-suite"
AUTO_UPGRADE_IMAGES = ("Contoso:WebApp:1",)
"""The test image (examples/images/webapp) may upgrade automatically, besides Azure's list."""
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
"""The one server path the e2e servers may publish images from (``--image-source-root``)."""


def trusting(ca: Path) -> ssl.SSLContext:
    """A client TLS context that trusts the server's generated CA."""
    return ssl.create_default_context(cafile=str(ca))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    endpoint: str
    ca: Path
    token: str
    data_dir: Path
    process: subprocess.Popen[str]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.endpoint, verify=trusting(self.ca), timeout=10,
                            headers={"Authorization": f"Bearer {self.token}"})


@contextmanager
def running_server(data_dir: Path, *, health_timeout: str = "3",
                   extra: tuple[str, ...] = (), driver: str = "simulated",
                   bootstrap_token: str | None = TOKEN, port: int | None = None
                   ) -> Iterator[Server]:
    """Start ``scaleset serve``; wait until ``/healthz`` answers; stop it afterwards.

    The simulated driver by default: these tests are about the API, not instances.
    ``bootstrap_token`` None lets serve generate its first token (``Server.token`` is
    then the one it printed, or "" when it printed none: tokens were already stored).
    """
    insecure = "--insecure-http" in extra
    scaleset = Path(sys.executable).with_name("scaleset")
    env = {**os.environ, "SCALESET_CONFIG": str(data_dir / "client-config.json")}  # not ~
    env.pop("SCALESET_BOOTSTRAP_TOKEN", None)
    if bootstrap_token is not None:
        env["SCALESET_BOOTSTRAP_TOKEN"] = bootstrap_token
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        # Port 0 unless told: serve binds a free one and names it (no race with other
        # tests picking "free" ports at the same time).
        [str(scaleset), "serve", "--port", str(port or 0), "--data-dir", str(data_dir),
         "--health-timeout", health_timeout, "--driver", driver,
         *(arg for image in AUTO_UPGRADE_IMAGES for arg in ("--auto-upgrade-image", image)),
         "--image-source-root", str(EXAMPLES), *extra],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    endpoint = ""
    ca = data_dir / "tls" / "ca.pem"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = (data_dir / "serve.log").read_text()
                raise RuntimeError("scaleset serve exited:\n" + output)
            if not endpoint:
                found = re.search(r"scaleset listening on (\S+)",
                                  (data_dir / "serve.log").read_text())
                endpoint = found.group(1) if found else ""
            try:
                ready = endpoint and (insecure or ca.exists())
                if ready and httpx.get(f"{endpoint}/healthz",
                                       verify=False if insecure else trusting(ca),
                                       timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("scaleset serve did not answer within 30 s:\n"
                                   + (data_dir / "serve.log").read_text())
            time.sleep(0.1)
        token = bootstrap_token
        if token is None:
            printed = re.search(r"First contributor token \(shown once; store it\): (\S+)",
                                (data_dir / "serve.log").read_text())
            token = printed.group(1) if printed else ""
        yield Server(endpoint, ca, token, data_dir, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            kill_instances(data_dir)  # it could not stop them itself: no orphans
        log.close()


def kill_instances(data_dir: Path) -> None:
    """SIGKILL every process of an instance whose OS disk lies under ``data_dir``."""
    # As root, instances live where <data-dir>/instances links to (server/instance_dir.py).
    roots = {os.path.realpath(data_dir), os.path.realpath(data_dir / "instances")}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            marked = b"SCALESET_INSTANCE_KEY=" in (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if marked and any(cwd == root or cwd.startswith(root + os.sep) for root in roots):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
