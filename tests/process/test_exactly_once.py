"""Custom data and each extension run once per OS disk, whenever ``serve`` is killed.

A real ``scaleset serve --driver process`` provisions a small fleet whose custom data
and CustomScript extension each append a line naming the OS disk to a counter file on
the instance's data disk (slowly, so kills land mid-step). ``serve`` is killed (kill -9)
at seeded random moments while the fleet provisions and again while an automatic OS
upgrade replaces every OS disk, and restarted each time on the same data directory.
In the end every OS disk the instance had ran custom data once and the extension once.
"""

from __future__ import annotations

import base64
import collections
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.server import Server, kill_instances, running_server

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
SET = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets/web"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = {"api-version": "2026-04-01"}
NETWORK = {"api-version": "2024-05-01"}
SEED = 20261207
KILLS_PROVISIONING = 3
KILLS_UPGRADING = 3
T = TypeVar("T")

# Each step takes ~0.6 s, its line written halfway: a kill lands before, during or after.
CUSTOM_DATA = """#!/bin/sh
data="${SCALESET_DATA_DISKS%%:*}"
sleep 0.3
echo "customData $(basename "$PWD")" >> "$data/counter.txt"
sleep 0.3
"""
COMMAND = ('sleep 0.3; data="${SCALESET_DATA_DISKS%%:*}"; '
           'echo "extension $(basename "$PWD")" >> "$data/counter.txt"; sleep 0.3')


def _serve(data_dir: Path) -> Any:
    return running_server(data_dir, driver="process", health_timeout="30", extra=(
        "--insecure-http", "--image-source-root", str(WEBAPP)))


def _call(http: httpx.Client, method: str, path: str, body: Any = None,
          params: dict[str, str] | None = None) -> Any:
    response = http.request(method, path, json=body, params=params or COMPUTE)
    assert response.status_code < 300, (method, path, response.status_code, response.text)
    return response.json() if response.content else None


def _wait(predicate: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while not (last := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return last


def _instances(http: httpx.Client) -> list[dict[str, Any]]:
    body = _call(http, "GET", f"{SET}/virtualMachines",
                 params={**COMPUTE, "$expand": "instanceView"})
    return list(body["value"])


def _provisioned(http: httpx.Client, version: str) -> list[dict[str, Any]] | None:
    """All 3 instances on ``version`` with the extension succeeded and healthy, or None."""
    items = _instances(http)
    if len(items) != 3:
        return None
    for item in items:
        view = item["properties"].get("instanceView") or {}
        extensions = {e["name"]: e["statuses"][0]["code"] for e in view.get("extensions") or []}
        exact = item["properties"]["storageProfile"]["imageReference"].get("exactVersion")
        health = ((view.get("vmHealth") or {}).get("status") or {}).get("code")
        if exact != version or extensions.get("count") != "ProvisioningState/succeeded" \
                or health != "HealthState/healthy":
            return None
    return items


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.endpoint, timeout=10, trust_env=False,
                        headers={"Authorization": f"Bearer {server.token}"})


def _state(http: httpx.Client) -> str:
    """What a stalled run looks like: the latest run and each instance's view."""
    latest = http.get(f"{SET}/rollingUpgrades/latest", params=COMPUTE).text
    views = [(i["instanceId"], i["properties"]["storageProfile"]["imageReference"].get(
        "exactVersion"), i["properties"].get("provisioningState"),
        [s["code"] for s in (i["properties"].get("instanceView") or {}).get("statuses", [])],
        (i["properties"].get("instanceView") or {}).get("vmHealth"))
        for i in _instances(http)]
    return f"latest run {latest}; instances {views}"


def _kill(server: Server) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    folder.mkdir()
    try:
        yield folder
    finally:
        kill_instances(folder)  # whatever a killed server left behind


def test_kill_9_at_random_moments_never_runs_a_step_twice_on_an_os_disk(
        data_dir: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    with _serve(data_dir) as server, _client(server) as http:
        _call(http, "PUT", f"{VERSIONS}/1.0.0", {
            "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.0.0")}}})
        _call(http, "PUT", LB, {"location": "westus", "sku": {"name": "Standard"},
                                "properties": {"probes": [{"name": "http", "properties": {
                                    "protocol": "Http", "port": 8080, "requestPath": "/health",
                                    "intervalInSeconds": 1, "numberOfProbes": 1}}]}},
              params=NETWORK)
        _call(http, "PUT", SET, {
            "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 3},
            "properties": {
                "upgradePolicy": {"mode": "Rolling", "automaticOSUpgradePolicy": {
                    "enableAutomaticOSUpgrade": True},
                    # Just after a restart adopted instances are still Initializing on the
                    # probe, which the default 20% counts as unhealthy and faults the run:
                    # this test is about steps, not about that policy.
                    "rollingUpgradePolicy": {"maxUnhealthyInstancePercent": 100,
                                             "maxUnhealthyUpgradedInstancePercent": 100}},
                "virtualMachineProfile": {
                    "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser",
                                  "customData": base64.b64encode(CUSTOM_DATA.encode()).decode()},
                    "storageProfile": {
                        "imageReference": {"publisher": "Contoso", "offer": "WebApp",
                                           "sku": "1", "version": "latest"},
                        "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
                    "networkProfile": {"healthProbe": {"id": LB + "/probes/http"}},
                    "extensionProfile": {"extensions": [{"name": "count", "properties": {
                        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                        "typeHandlerVersion": "2.1",
                        "settings": {"commandToExecute": COMMAND}}}]}}}})
        time.sleep(rng.uniform(0.2, 1.2))
        _kill(server)
    for _ in range(KILLS_PROVISIONING - 1):
        with _serve(data_dir) as server:
            time.sleep(rng.uniform(0.2, 1.5))
            _kill(server)
    with _serve(data_dir) as server, _client(server) as http:
        _wait(lambda: _provisioned(http, "1.0.0"), timeout=40, what="3 provisioned instances")
        _call(http, "PUT", f"{VERSIONS}/1.1.0", {
            "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.1.0")}}})
        time.sleep(rng.uniform(0.5, 2.5))
        _kill(server)
    for _ in range(KILLS_UPGRADING - 1):
        with _serve(data_dir) as server:
            time.sleep(rng.uniform(0.5, 3.0))
            _kill(server)
    with _serve(data_dir) as server, _client(server) as http:
        try:
            items = _wait(lambda: _provisioned(http, "1.1.0"), timeout=90,
                          what="3 instances upgraded to 1.1.0 and provisioned")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {_state(http)}") from None
        current = {i["instanceId"]: i["properties"]["instanceView"]["disks"][0]["name"]
                   for i in items}

    counters = sorted(data_dir.glob("instances/*/*/disks/lun0/counter.txt"))
    assert len(counters) == 3, counters
    for counter in counters:
        lines = counter.read_text().splitlines()
        runs = collections.Counter(lines)
        assert all(n == 1 for n in runs.values()), (counter, lines)
        disks = {line.split()[1] for line in lines}
        assert len(disks) == 2, (counter, lines)  # the first OS disk and the upgraded one
        assert runs.keys() == {f"{kind} {disk}" for kind in ("customData", "extension")
                               for disk in disks}, (counter, lines)
        assert disks & set(current.values()), (counter, current)
    assert time.monotonic() - started < 180
