"""Stopping ``scaleset serve`` mid-rollout and starting it again on the same data directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.server import running_server

V = "?api-version=2026-04-01"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
SET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"


def _latest(http: Any) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"{SET}/rollingUpgrades/latest{V}").json()["properties"]
    return body


def test_a_rollout_interrupted_by_a_restart_resumes_and_completes(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server, server.http() as http:
        http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"})
        r = http.put(f"{SET}{V}", json={
            "location": "westus", "sku": {"capacity": 10},
            "properties": {"upgradePolicy": {"mode": "Manual"},
                           "virtualMachineProfile": {"storageProfile": {"imageReference": {
                               "publisher": "Canonical", "offer": "UbuntuServer",
                               "sku": "18.04-LTS", "version": "latest"}}}}})
        assert r.status_code == 201
        deadline = time.monotonic() + 30
        while http.get(r.headers["Azure-AsyncOperation"]).json()["status"] != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)  # every instance healthy
        http.put(f"{IMAGES}/1.1.0{V}", json={"location": "westus"})
        assert http.post(f"{SET}/osRollingUpgrade{V}").status_code == 202
        while _latest(http)["progress"]["successfulInstanceCount"] < 2:
            assert time.monotonic() < deadline + 30
            time.sleep(0.1)
        before = _latest(http)
        assert before["runningStatus"]["code"] == "RollingForward"
    # The server is stopped (SIGTERM) with the run half done; start it again.
    with running_server(tmp_path) as server, server.http() as http:
        deadline = time.monotonic() + 60
        while (latest := _latest(http))["runningStatus"]["code"] == "RollingForward":
            assert time.monotonic() < deadline, latest
            time.sleep(0.2)
        assert latest["runningStatus"]["code"] == "Completed", latest
        assert latest["progress"]["successfulInstanceCount"] == 10
        vms = http.get(f"{SET}/virtualMachines{V}").json()["value"]
        assert {v["properties"]["storageProfile"]["imageReference"]["exactVersion"]
                for v in vms} == {"1.1.0"}
        assert [v["instanceId"] for v in vms] == [str(i) for i in range(10)]
        history = http.get(f"{SET}/osUpgradeHistory{V}").json()["value"]
        assert len(history) == 1  # the same run resumed; no second attempt


def test_port_0_binds_a_free_port_and_names_it_everywhere(tmp_path: Path) -> None:
    # running_server passes --port 0 and reads the endpoint from the start-up line.
    with running_server(tmp_path) as server, server.http() as http:
        port = int(server.endpoint.rsplit(":", 1)[1])
        assert port > 0
        client = json.loads((tmp_path / "client.json").read_text())
        assert client["endpoint"] == server.endpoint == f"https://127.0.0.1:{port}"
        assert http.get("/healthz").status_code == 200
