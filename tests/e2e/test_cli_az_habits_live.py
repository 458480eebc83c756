"""az habits against a live ``scaleset serve``: a probe by name, update's policy flags,
``--ids`` and ``--query`` end to end (the server accepts what the CLI sends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, running_server

SCALESET = str(Path(sys.executable).with_name("scaleset"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("az-habits")) as s:
        yield s


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
           "SCALESET_TOKEN": server.token, "COLUMNS": "80"}
    return subprocess.run([SCALESET, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_create_by_probe_name_then_update_the_policy_by_id(server: Server) -> None:
    ok(cli(server, "vm", "image", "publish", "-l", "westus", "-p", "Canonical",
           "-f", "UbuntuServer", "-s", "18.04-LTS", "--version", "1.0.0"))
    ok(cli(server, "network", "lb", "create", "-g", "rg", "-n", "lb", "--sku", "Standard"))
    ok(cli(server, "network", "lb", "probe", "create", "-g", "rg", "--lb-name", "lb",
           "-n", "http", "--protocol", "Http", "--port", "80", "--path", "/health"))
    missing = cli(server, "vmss", "create", "-g", "rg", "-n", "web", "--image",
                  "Canonical:UbuntuServer:18.04-LTS:latest", "--lb", "lb",
                  "--health-probe", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("error (ProbeNotFound)")

    created = json.loads(ok(cli(
        server, "vmss", "create", "-g", "rg", "-n", "web", "--image",
        "Canonical:UbuntuServer:18.04-LTS:latest", "--instance-count", "2",
        "--upgrade-policy-mode", "Rolling", "--lb", "lb", "--health-probe", "http",
        "--enable-auto-os-upgrade", "true")))
    probe = created["properties"]["virtualMachineProfile"]["networkProfile"]["healthProbe"]
    assert probe["id"].endswith("/loadBalancers/lb/probes/http")
    assert created["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
        "enableAutomaticOSUpgrade"] is True

    # A batch above the unhealthy limit (default 20) is refused, whichever one was sent.
    over = cli(server, "vmss", "update", "--ids", created["id"],
               "--max-batch-instance-percent", "50")
    assert over.returncode == 1 and "maxBatchInstancePercent" in over.stderr, over.stderr
    policy = json.loads(ok(cli(
        server, "vmss", "update", "--ids", created["id"], "--max-batch-instance-percent", "50",
        "--max-unhealthy-instance-percent", "50",
        "--pause-time-between-batches", "5", "--prioritize-unhealthy-instances",
        "--enable-auto-os-upgrade", "false",
        "--query", "properties.upgradePolicy")))
    assert policy["rollingUpgradePolicy"]["maxBatchInstancePercent"] == 50
    assert policy["rollingUpgradePolicy"]["pauseTimeBetweenBatches"] == "PT5S"
    assert policy["rollingUpgradePolicy"]["prioritizeUnhealthyInstances"] is True
    assert policy["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is False

    names = ok(cli(server, "vmss", "list", "-g", "rg", "--query", "[].name", "-o", "tsv"))
    assert names == "web\n"
    table = ok(cli(server, "vmss", "list-instances", "-g", "rg", "-n", "web", "-o", "table"))
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert len(table.splitlines()) == 4
