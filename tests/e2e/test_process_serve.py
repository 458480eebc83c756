"""``scaleset serve --driver process``: real instances across server crashes and stops.

A SIGKILLed server leaves its instances running and the next server on the
same data directory adopts them (same processes, same addresses); a server
stopped with SIGTERM stops every instance, and the next one boots them again
on the disks they had, data disks included. The CLI reads addresses and boot
logs from the live server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from scaleset.drivers.process.processes import KEY_VARIABLE
from tests.e2e.server import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp"
SCALESET = str(Path(sys.executable).with_name("scaleset"))
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
SET = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets/web"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = {"api-version": "2026-04-01"}
NETWORK = {"api-version": "2024-05-01"}
T = TypeVar("T")


def serve(data_dir: Path) -> AbstractContextManager[Server]:
    """``scaleset serve --driver process`` over plain HTTP on ``data_dir``."""
    return running_server(data_dir, driver="process", extra=("--insecure-http",))


def wait_for(predicate: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while not (last := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return last


def instance_processes(data_dir: Path) -> dict[str, set[int]]:
    """``{private IP: pids}`` of every live process of an instance of ``data_dir``.

    An instance's processes carry ``SCALESET_INSTANCE_KEY``; the data directory is
    told apart by their working directory (the OS disk, under ``data_dir``).
    """
    # As root, instances live where <data-dir>/instances links to (server/instance_dir.py).
    roots = {os.path.realpath(data_dir), os.path.realpath(data_dir / "instances")}
    found: dict[str, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = dict(item.split(b"=", 1) for item in
                           (entry / "environ").read_bytes().split(b"\0") if b"=" in item)
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if KEY_VARIABLE.encode() not in environ or state == "Z":
            continue
        if any(cwd == root or cwd.startswith(root + os.sep) for root in roots):
            ip = environ.get(b"SCALESET_PRIVATE_IP", b"?").decode()
            found.setdefault(ip, set()).add(int(entry.name))
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The server's data directory; whatever instance process outlives the test is killed."""
    try:
        yield tmp_path
    finally:
        for pids in instance_processes(tmp_path).values():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.endpoint, timeout=10, trust_env=False,
                        headers={"Authorization": f"Bearer {server.token}"})


def call(http: httpx.Client, method: str, path: str, body: Any = None,
         params: dict[str, str] = COMPUTE) -> Any:
    response = http.request(method, path, json=body, params=params)
    assert response.status_code in (200, 201, 202), (method, path, response.text)
    return response.json() if response.content else None


def instances(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = call(http, "GET", f"{SET}/virtualMachines",
                                       params={**COMPUTE, "$expand": "instanceView"})["value"]
    return items


def address(instance: dict[str, Any]) -> str:
    return str(instance["properties"]["instanceView"]["privateIPAddress"])


def all_healthy(http: httpx.Client, count: int) -> list[str] | None:
    """The addresses of ``count`` healthy instances, or ``None``."""
    items = instances(http)
    healthy = [i for i in items if i["properties"]["instanceView"]["vmHealth"]["status"]["code"]
               == "HealthState/healthy"]
    return [address(i) for i in items] if len(items) == len(healthy) == count else None


def page(ip: str, path: str = "/") -> httpx.Response | None:
    try:
        return httpx.get(f"http://{ip}:8080{path}", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None


def cli(server: Server, *args: str) -> str:
    env = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
           "SCALESET_TOKEN": server.token}
    result = subprocess.run([SCALESET, *args, "--endpoint", server.endpoint,
                             "--subscription", SUB], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def create_web(http: httpx.Client) -> list[str]:
    """Webapp 1.0.0 behind a load-balancer probe, 3 instances; their addresses once healthy."""
    call(http, "PUT", f"{VERSIONS}/1.0.0", {
        "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.0.0")}}})
    call(http, "PUT", LB, {"location": "westus", "sku": {"name": "Standard"}, "properties": {
        "probes": [{"name": "http", "properties": {
            "protocol": "Http", "port": 8080, "requestPath": "/health",
            "intervalInSeconds": 1, "numberOfProbes": 1}}]}}, params=NETWORK)
    call(http, "PUT", SET, {
        "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 3},
        "properties": {
            "upgradePolicy": {"mode": "Rolling",
                              "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser"},
                "storageProfile": {
                    "imageReference": {"publisher": "Contoso", "offer": "WebApp", "sku": "1",
                                       "version": "latest"},
                    "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
                "networkProfile": {"healthProbe": {"id": LB + "/probes/http"}}}}})
    return wait_for(lambda: all_healthy(http, 3), timeout=20, what="3 healthy instances")


def test_a_killed_server_leaves_instances_running_and_the_next_adopts_them(
        data_dir: Path) -> None:
    with serve(data_dir) as server, client(server) as http:
        addresses = create_web(http)
        assert len(set(addresses)) == 3 and all(a.startswith("127.") for a in addresses)
        before = instance_processes(data_dir)
        assert sorted(before) == sorted(addresses)
        assert all(len(pids) == 1 for pids in before.values()), before

        info = json.loads(cli(server, "vmss", "list-instance-connection-info",
                              "-g", "rg1", "-n", "web"))
        assert info == {f"instance {i}": a for i, a in enumerate(addresses)}
        boot = cli(server, "vmss", "get-boot-log", "-g", "rg1", "-n", "web",
                   "--instance-id", "0")
        assert f"listening on {addresses[0]}:8080" in boot

        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        # The control plane is gone; its instances are not.
        for ip in addresses:
            response = page(ip)
            assert response is not None and "webapp 1.0.0" in response.text
        assert instance_processes(data_dir) == before

    with serve(data_dir) as server, client(server) as http:
        assert wait_for(lambda: all_healthy(http, 3), timeout=15,
                        what="the adopted instances healthy") == addresses
        assert instance_processes(data_dir) == before  # the same processes, no second one
        boot = cli(server, "vmss", "get-boot-log", "-g", "rg1", "-n", "web",
                   "--instance-id", "1")
        assert "adopted by a new control plane" in boot
        assert boot.count("[scaleset] booting OS disk") == 1


def test_a_terminated_server_stops_its_instances_and_the_next_boots_them_again(
        data_dir: Path) -> None:
    with serve(data_dir) as server, client(server) as http:
        addresses = create_web(http)
        for n, ip in enumerate(addresses):
            put = httpx.put(f"http://{ip}:8080/data/x", content=f"kept {n}".encode(),
                            timeout=2, trust_env=False)
            assert put.status_code == 201, put.text
        before = instance_processes(data_dir)
        assert sorted(before) == sorted(addresses)
    # running_server sent SIGTERM and waited for the server to exit.
    assert server.process.returncode is not None
    assert instance_processes(data_dir) == {}, "an instance process outlived its server"
    assert all(page(ip) is None for ip in addresses)

    with serve(data_dir) as server, client(server) as http:
        assert wait_for(lambda: all_healthy(http, 3), timeout=20,
                        what="the instances booted again") == addresses
        after = instance_processes(data_dir)
        assert sorted(after) == sorted(addresses)
        assert all(len(pids) == 1 for pids in after.values()), after
        assert not set().union(*after.values()) & set().union(*before.values())
        for n, ip in enumerate(addresses):
            response = page(ip, "/data/x")
            assert response is not None and response.text == f"kept {n}"
        boot = cli(server, "vmss", "get-boot-log", "-g", "rg1", "-n", "web",
                   "--instance-id", "2")
        assert boot.count("[scaleset] booting OS disk") == 2


def test_a_second_serve_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    with running_server(tmp_path, driver="process", extra=("--insecure-http",)):
        scaleset = Path(sys.executable).with_name("scaleset")
        second = subprocess.run(
            [str(scaleset), "serve", "--port", "0", "--data-dir", str(tmp_path),
             "--insecure-http"], capture_output=True, text=True, timeout=30,
            env={**os.environ, "SCALESET_CONFIG": str(tmp_path / "second-config.json")})
        assert second.returncode != 0
        assert "another scaleset serve" in second.stdout + second.stderr


SLOW_EXTENSIONS = [
    {"name": "warmup", "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1", "settings": {"commandToExecute": "sleep 2"}}},
    # A stop lets the step under way finish but starts no other: with a second step
    # to come, the operation is still in progress when serve has stopped.
    {"name": "settle", "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1", "provisionAfterExtensions": ["warmup"],
        "settings": {"commandToExecute": "sleep 1"}}}]


def test_a_server_stopped_mid_upgrade_resumes_the_run_without_rolling_back(
        data_dir: Path) -> None:
    with serve(data_dir) as server, client(server) as http:
        create_web(http)
        body = call(http, "GET", SET)
        profile = body["properties"]["virtualMachineProfile"]
        # Each new OS disk takes 3 s to provision: time to stop the server mid-batch.
        call(http, "PATCH", SET, {"properties": {"virtualMachineProfile": {
            "extensionProfile": {"extensions": SLOW_EXTENSIONS}}}})
        assert profile["storageProfile"]["imageReference"]["version"] == "latest"
        def model_applied() -> bool:
            items = instances(http)
            return all(i["properties"].get("latestModelApplied") for i in items) \
                and all_healthy(http, 3) is not None
        # The model run must be over before 1.1.0 appears, or the interruption below could
        # land in the model run rather than in the OS run this test is about.
        wait_for(model_applied, timeout=60, what="the model applied")
        call(http, "PUT", f"{VERSIONS}/1.1.0", {
            "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.1.0")}}})

        def upgrading() -> bool:
            return any(i["properties"]["provisioningState"] == "Updating"
                       for i in instances(http))
        wait_for(upgrading, timeout=20, what="a batch in progress")
    # Stopped (SIGTERM) in the middle of the batch; the next server picks it up.
    with serve(data_dir) as server, client(server) as http:
        def ended() -> dict[str, Any] | None:
            latest = call(http, "GET", f"{SET}/rollingUpgrades/latest")["properties"]
            code = latest["runningStatus"]["code"]
            return latest if code in ("Completed", "Faulted", "Cancelled") else None
        latest = wait_for(ended, timeout=60, what="the run to end")
        history = call(http, "GET", f"{SET}/osUpgradeHistory")["value"]
        assert history[0]["properties"]["targetImageReference"]["version"] == "1.1.0"
        assert latest["runningStatus"]["code"] == "Completed", latest
        assert latest["progress"]["failedInstanceCount"] == 0
        assert (latest.get("rollbackInfo") or {}).get(
            "successfullyRolledbackInstanceCount", 0) == 0
        ips = wait_for(lambda: all_healthy(http, 3), timeout=20, what="3 healthy instances")
        assert all("webapp 1.1.0" in (page(ip) or httpx.Response(0)).text for ip in ips)
    consoles = [p.read_text() for p in (data_dir / "instances").glob("*/*/console.log")]
    assert any("resuming operation" in text for text in consoles), \
        "the interrupted upgrade should have been resumed, not redone or failed"
