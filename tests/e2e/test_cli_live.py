"""The CLI verbs against a live ``scaleset serve`` (HTTPS, generated CA, bearer token)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, running_server

SCALESET = str(Path(sys.executable).with_name("scaleset"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("cli")) as s:
        yield s


def cli(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
           "SCALESET_TOKEN": server.token}
    result = subprocess.run([SCALESET, *args], capture_output=True, text=True, env=env,
                            timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def data(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def probe_id(server: Server) -> str:
    """Load balancer 'lb' in 'rg' with an Http probe 'http'; the probe's id (reruns are no-ops)."""
    cli(server, "network", "lb", "create", "-g", "rg", "-n", "lb")
    probe = data(cli(server, "network", "lb", "probe", "create", "-g", "rg", "--lb-name", "lb",
                     "-n", "http", "--protocol", "Http", "--port", "80", "--path", "/health"))
    return str(probe["id"])


def test_serve_writes_a_client_config_the_cli_uses(server: Server) -> None:
    config = json.loads((server.data_dir / "client-config.json").read_text())
    own = config["profiles"][config["current"]]
    assert own["endpoint"] == server.endpoint
    assert Path(own["caFile"]) == server.ca.resolve()


def test_the_vmss_verbs_drive_a_rollout(server: Server) -> None:
    image = ("vm", "image", "publish", "-l", "westus", "-p", "Canonical", "-f", "UbuntuServer",
             "-s", "18.04-LTS")
    cli(server, *image, "--version", "1.0.0")
    created = data(cli(server, "vmss", "create", "-g", "rg", "-n", "web",
                       "--image", "Canonical:UbuntuServer:18.04-LTS:latest",
                       "--instance-count", "3", "--upgrade-policy-mode", "Rolling",
                       "--health-probe", probe_id(server)))
    assert created["name"] == "web"
    assert [s["name"] for s in data(cli(server, "vmss", "list", "-g", "rg"))] == ["web"]
    shown = data(cli(server, "vmss", "show", "-g", "rg", "-n", "web"))
    assert shown["sku"]["capacity"] == 3
    instances = data(cli(server, "vmss", "list-instances", "-g", "rg", "-n", "web"))
    assert [i["instanceId"] for i in instances] == ["0", "1", "2"]

    cli(server, *image, "--version", "1.1.0")
    listed = data(cli(server, "vm", "image", "list", "-l", "westus", "-p", "Canonical",
                      "-f", "UbuntuServer", "-s", "18.04-LTS", "--all"))
    assert [i["version"] for i in listed] == ["1.0.0", "1.1.0"]  # az-shaped rows
    finished = data(cli(server, "vmss", "rolling-upgrade", "start", "-g", "rg", "-n", "web"))
    assert finished["properties"]["runningStatus"]["code"] == "Completed"
    latest = data(cli(server, "vmss", "rolling-upgrade", "get-latest", "-g", "rg", "-n", "web"))
    assert latest["properties"]["progress"]["successfulInstanceCount"] == 3
    history = data(cli(server, "vmss", "get-os-upgrade-history", "-g", "rg", "-n", "web"))
    assert history[0]["properties"]["startedBy"] == "User"
    view = data(cli(server, "vmss", "get-instance-view", "-g", "rg", "-n", "web",
                    "--instance-id", "0"))
    assert view["vmHealth"]["status"]["code"].startswith("HealthState/")

    protected = data(cli(server, "vmss", "set-protection", "-g", "rg", "-n", "web",
                         "--instance-id", "1", "--protect-from-scale-in"))
    assert protected["properties"]["protectionPolicy"]["protectFromScaleIn"] is True
    cli(server, "vmss", "reimage", "-g", "rg", "-n", "web", "--instance-ids", "2")
    cli(server, "vmss", "update-instances", "-g", "rg", "-n", "web", "--instance-ids", "0")
    events = data(cli(server, "vmss", "rolling-upgrade", "get-latest", "-g", "rg", "-n", "web"))
    assert events["properties"]["runningStatus"]["code"] in ("Completed", "RollingForward")

    cli(server, "vmss", "update", "-g", "rg", "-n", "web", "--set", "sku.capacity=4")
    assert data(cli(server, "vmss", "show", "-g", "rg", "-n", "web"))["sku"]["capacity"] == 4

    refused = cli(server, "vmss", "rolling-upgrade", "cancel", "-g", "rg", "-n", "web",
                  check=False)
    assert refused.returncode == 1
    assert "OperationNotAllowed" in refused.stderr

    cli(server, "vmss", "delete", "-g", "rg", "-n", "web")
    missing = cli(server, "vmss", "show", "-g", "rg", "-n", "web", check=False)
    assert missing.returncode == 1 and "ResourceNotFound" in missing.stderr


def test_a_bad_image_faults_the_run_and_the_cli_says_so(server: Server) -> None:
    image = ("vm", "image", "publish", "-l", "westus", "-p", "Contoso", "-f", "App",
             "-s", "v1")
    cli(server, *image, "--version", "1.0.0")
    cli(server, "vmss", "create", "-g", "rg", "-n", "broken", "--image", "Contoso:App:v1",
        "--instance-count", "5", "--upgrade-policy-mode", "Rolling", "--health-probe",
        probe_id(server))
    cli(server, *image, "--version", "2.0.0", "--simulate-unhealthy")
    result = cli(server, "vmss", "rolling-upgrade", "start", "-g", "rg", "-n", "broken",
                 "--wait", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    final = json.loads(result.stdout)
    assert final["properties"]["runningStatus"]["code"] == "Faulted"
    # a manual run never rolls back: the instance stays on the broken image
    vm = data(cli(server, "vmss", "show", "-g", "rg", "-n", "broken", "--instance-id", "0"))
    assert vm["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "2.0.0"


def test_the_network_lb_verbs_against_a_live_server(server: Server) -> None:
    cli(server, "network", "lb", "create", "-g", "net", "-n", "edge", "--sku", "Standard")
    probe = data(cli(server, "network", "lb", "probe", "create", "-g", "net", "--lb-name",
                     "edge", "-n", "ssh", "--protocol", "tcp", "--port", "22",
                     "--interval", "5", "--threshold", "3"))
    assert probe["properties"] == {"protocol": "Tcp", "port": 22, "intervalInSeconds": 5,
                                   "numberOfProbes": 3, "provisioningState": "Succeeded"}
    listed = data(cli(server, "network", "lb", "list", "-g", "net"))
    assert [lb["name"] for lb in listed] == ["edge"]
    assert listed[0]["sku"]["name"] == "Standard"
    assert [p["name"] for p in data(cli(server, "network", "lb", "probe", "list", "-g", "net",
                                        "--lb-name", "edge"))] == ["ssh"]
    bad = cli(server, "network", "lb", "probe", "create", "-g", "net", "--lb-name", "edge",
              "-n", "web", "--protocol", "Https", "--port", "443", check=False)
    assert bad.returncode == 1 and "requestPath is required" in bad.stderr
    cli(server, "network", "lb", "probe", "delete", "-g", "net", "--lb-name", "edge", "-n", "ssh")
    assert data(cli(server, "network", "lb", "show", "-g", "net", "-n", "edge"))[
        "properties"]["probes"] == []
    cli(server, "network", "lb", "delete", "-g", "net", "-n", "edge")
    gone = cli(server, "network", "lb", "show", "-g", "net", "-n", "edge", check=False)
    assert gone.returncode == 1 and "ResourceNotFound" in gone.stderr


def test_tokens_are_created_for_the_server_database(server: Server) -> None:
    created = cli(server, "token", "create", "--role", "reader", "--data-dir",
                  str(server.data_dir))
    token = created.stdout.strip().splitlines()[-1]
    env_reader = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
                  "SCALESET_TOKEN": token}
    ok = subprocess.run([SCALESET, "vmss", "list"], capture_output=True, text=True,
                        env=env_reader, timeout=60)
    assert ok.returncode == 0, ok.stderr
    denied = subprocess.run([SCALESET, "vmss", "delete", "-g", "rg", "-n", "anything"],
                            capture_output=True, text=True, env=env_reader, timeout=60)
    assert denied.returncode == 1 and "AuthorizationFailed" in denied.stderr


def test_insecure_http_serves_plain_http_and_still_needs_a_token(tmp_path: Path) -> None:
    import httpx

    with running_server(tmp_path, extra=("--insecure-http",)) as plain:
        assert plain.endpoint.startswith("http://")
        assert not (tmp_path / "tls" / "ca.pem").exists()
        path = ("/subscriptions/s/providers/Microsoft.Compute/virtualMachineScaleSets"
                "?api-version=2026-04-01")
        assert httpx.get(plain.endpoint + path).status_code == 401
        ok = httpx.get(plain.endpoint + path, headers={"Authorization": f"Bearer {plain.token}"})
        assert ok.status_code == 200 and ok.json() == {"value": []}
