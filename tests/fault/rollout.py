"""A small process-driver fleet behind a real ``serve``, for the fault tests.

Each image version is the example webapp plus a start script that appends one
line per boot to ``boots.log`` on the instance's first data disk; the scale
set's custom data appends one line per run to ``customdata.log`` there. Both
lines name the OS disk (the start script's working directory) and the image
version, so a test counts, per instance, how many OS disks each version got
(an upgrade done twice shows as two disks of one version) and how many times
custom data ran on each disk.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.server import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp" / "1.1.0"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
SET = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets/web"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = {"api-version": "2026-04-01"}
NETWORK = {"api-version": "2024-05-01"}
T = TypeVar("T")

START = """#!/bin/sh
# One line per boot of this OS disk: "boot <disk> <version>" on the first data disk.
disk="${SCALESET_DATA_DISKS%%:*}"
version="$(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' image.json)"
[ -n "$disk" ] && echo "boot $(basename "$PWD") $version" >> "$disk/boots.log"
# A second of boot before the app answers: a batch lasts long enough to be killed in.
sleep 1
exec python3 app.py
"""
CUSTOM_DATA = """#!/bin/sh
disk="${SCALESET_DATA_DISKS%%:*}"
version="$(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' image.json)"
echo "customdata $(basename "$PWD") $version" >> "$disk/customdata.log"
sleep 0.5
"""


def build_image(root: Path, version: str) -> Path:
    """Image version ``version`` under ``root``: the webapp, booted through ``start.sh``."""
    tree = root / version
    shutil.copytree(WEBAPP, tree)
    (tree / "start.sh").write_text(START)
    (tree / "start.sh").chmod(0o755)
    manifest = json.loads((tree / "image.json").read_text())
    manifest.update(version=version, entrypoint=["sh", "start.sh"],
                    description=f"webapp {version} for the fault suite")
    (tree / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return tree


def serve(data_dir: Path, images: Path, *, health_timeout: str = "8"
          ) -> AbstractContextManager[Server]:
    """``serve --driver process`` over plain HTTP; image sources allowed under ``images``."""
    return running_server(data_dir, driver="process", health_timeout=health_timeout,
                          extra=("--insecure-http", "--rollout-timing", "immediate",
                                 "--image-source-root", str(images)))


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.endpoint, timeout=10, trust_env=False,
                        headers={"Authorization": f"Bearer {server.token}"})


def call(http: httpx.Client, method: str, path: str, body: Any = None,
         params: dict[str, str] = COMPUTE) -> Any:
    response = http.request(method, path, json=body, params=params)
    assert response.status_code in (200, 201, 202), (method, path, response.status_code,
                                                     response.text)
    return response.json() if response.content else None


def wait_for(predicate: Callable[[], T | None], *, timeout: float, what: str,
             state: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` until truthy; on timeout fail with ``state()`` (what was seen)."""
    deadline = time.monotonic() + timeout
    while not (last := predicate()):
        if time.monotonic() > deadline:
            seen = f"; last seen: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(0.2)
    return last


def fleet_state(http: httpx.Client) -> str:
    """One line per instance and the latest run, for failure messages."""
    lines = []
    for i in instances(http):
        p = i["properties"]
        view = p.get("instanceView") or {}
        lines.append(f"instance {i['instanceId']}: {p['provisioningState']}, "
                     f"{p['storageProfile']['imageReference'].get('exactVersion')}, "
                     f"{(view.get('vmHealth') or {}).get('status', {}).get('code')}, "
                     f"{[s.get('code') for s in view.get('statuses') or []]}")
    run = latest(http) or {}
    lines.append(f"latest run: {run.get('runningStatus')}, {run.get('progress')}, "
                 f"{run.get('error')}")
    return "\n".join(lines)


def publish(http: httpx.Client, tree: Path) -> None:
    call(http, "PUT", f"{VERSIONS}/{tree.name}", {
        "location": "westus", "properties": {"source": {"path": str(tree)}}})


def create_fleet(http: httpx.Client, first: Path, capacity: int) -> None:
    """Scale set ``web`` on ``first`` behind an HTTP probe: one instance per batch."""
    publish(http, first)
    call(http, "PUT", LB, {"location": "westus", "sku": {"name": "Standard"}, "properties": {
        "probes": [{"name": "http", "properties": {
            "protocol": "Http", "port": 8080, "requestPath": "/health",
            "intervalInSeconds": 1, "numberOfProbes": 1}}]}}, params=NETWORK)
    call(http, "PUT", SET, {
        "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "properties": {
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {"maxBatchInstancePercent": 100 // capacity,
                                         "maxUnhealthyInstancePercent": 100,
                                         "maxUnhealthyUpgradedInstancePercent": 100,
                                         "pauseTimeBetweenBatches": "PT0S"}},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser",
                              "customData": base64.b64encode(CUSTOM_DATA.encode()).decode()},
                "storageProfile": {
                    "imageReference": {"publisher": "Contoso", "offer": "WebApp", "sku": "1",
                                       "version": "latest"},
                    "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
                "networkProfile": {"healthProbe": {"id": LB + "/probes/http"}}}}})


def instances(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = call(http, "GET", f"{SET}/virtualMachines",
                                       params={**COMPUTE, "$expand": "instanceView"})["value"]
    return items


def address(instance: dict[str, Any]) -> str:
    return str(instance["properties"]["instanceView"]["privateIPAddress"])


def on_version(http: httpx.Client, version: str, count: int) -> dict[str, str] | None:
    """``{instance id: address}`` when all ``count`` instances run ``version`` healthy."""
    items = instances(http)
    done = [i for i in items
            if i["properties"]["storageProfile"]["imageReference"].get("exactVersion") == version
            and i["properties"]["instanceView"]["vmHealth"]["status"]["code"]
            == "HealthState/healthy"
            and i["properties"]["provisioningState"] == "Succeeded"]
    if len(items) != count or len(done) != count:
        return None
    return {str(i["instanceId"]): address(i) for i in items}


def latest(http: httpx.Client) -> dict[str, Any] | None:
    response = http.get(f"{SET}/rollingUpgrades/latest", params=COMPUTE)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    properties: dict[str, Any] = response.json()["properties"]
    return properties


def data_file(ip: str, name: str) -> str | None:
    """A file of the first data disk, read through the instance's webapp."""
    try:
        response = httpx.get(f"http://{ip}:8080/data/{name}", timeout=3, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def put_data_file(ip: str, name: str, content: str) -> None:
    response = httpx.put(f"http://{ip}:8080/data/{name}", content=content.encode(),
                         timeout=3, trust_env=False)
    assert response.status_code == 201, response.text


def disks_per_version(log: str, word: str) -> Counter[tuple[str, str]]:
    """``{(version, OS disk): lines}`` of the ``word`` lines of a marker log."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == word:
            counts[(parts[2], parts[1])] += 1
    return counts
