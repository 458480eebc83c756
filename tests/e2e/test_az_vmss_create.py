"""Real ``az vmss create`` against a live ``scaleset serve``: a template deployment end to end.

az 2.91 signs in with a service principal (as in ``test_az_login``), looks up the
image and the group's virtual networks, builds its ARM template and PUTs it as
``Microsoft.Resources/deployments/vmss_deploy_…``, polls the deployment and
prints its ``vmss`` output. The scale set must then run, with the instances
asked for. A second test drives the same kind of deployment with the Python
SDK (azure-mgmt-resource-deployments) and the template az sends, captured in
``tests/integration/az_templates``. Skipped without ``SCALESET_TEST_AZ``
(the az test only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, running_server
from tests.e2e.az import AZ_MISSING, DEFAULT_SUBSCRIPTION, signed_in

needs_az = AZ_MISSING
CV = "?api-version=2026-04-01"
RV = "?api-version=2024-11-01"
AZ_TEMPLATES = Path(__file__).parents[1] / "integration" / "az_templates"
IMAGE = "Canonical:UbuntuServer:18.04-LTS:latest"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("az-vmss-create")) as s:
        with s.http() as http:
            r = http.put(f"/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.Compute/"
                         "locations/westus/publishers/Canonical/artifacttypes/vmimage/offers/"
                         f"UbuntuServer/skus/18.04-LTS/versions/1.0.0{CV}",
                         json={"location": "westus", "properties": {
                             "osDiskImage": {"operatingSystem": "Linux"}}})
            assert r.status_code in (200, 201), r.text
        yield s


def _power_state(vm: dict[str, Any]) -> str:
    statuses = vm["properties"].get("instanceView", {}).get("statuses", [])
    return next((s["code"] for s in statuses if s["code"].startswith("PowerState/")), "none")


def wait_running(server: Server, group: str, name: str, count: int) -> dict[str, Any]:
    """The scale set once ``count`` instances are provisioned and running (as on Azure,
    where az vmss create ends with running instances)."""
    base = (f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{group}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{name}")
    deadline = time.monotonic() + 60
    with server.http() as http:
        while time.monotonic() < deadline:
            vms = http.get(f"{base}/virtualMachines{CV}&$expand=instanceView").json()["value"]
            states = [(v["properties"]["provisioningState"], _power_state(v)) for v in vms]
            if len(vms) == count and all(s == ("Succeeded", "PowerState/running")
                                         for s in states):
                scale_set: dict[str, Any] = http.get(base + CV).json()
                return scale_set
            time.sleep(0.2)
    raise AssertionError(f"{name}: instances {states} never all Succeeded and running")


def missing_types(stderr: str) -> set[str]:
    """The resource types a refused deployment names as unserved (empty when none)."""
    found = set()
    for part in stderr.split("for type '")[1:]:
        found.add(part.split("'")[0])
    return found


@needs_az
def test_az_vmss_create_uniform_ends_with_a_running_scale_set(server: Server,
                                                              tmp_path: Path) -> None:
    az = signed_in(server, tmp_path / "azure")
    assert az.json("group", "create", "-n", "rg-uniform", "-l", "westus")["name"] == \
        "rg-uniform"
    done = az.run("vmss", "create", "-g", "rg-uniform", "-n", "web", "--image", IMAGE,
                  "--instance-count", "3", "--upgrade-policy-mode", "Automatic",
                  "--orchestration-mode", "Uniform", "--admin-username", "azureuser",
                  "--admin-password", "Never-Echo-12!", "--lb", "", "--public-ip-address", "",
                  "--vm-sku", "Standard_B1s", "-o", "json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    vmss = printed["vmss"]  # az prints the deployment's output, camel-cased by ARM
    assert vmss["orchestrationMode"] == "Uniform"
    assert vmss["upgradePolicy"]["mode"] == "Automatic"
    assert vmss["provisioningState"] == "Succeeded"
    assert "Never-Echo-12!" not in done.stdout

    scale_set = wait_running(server, "rg-uniform", "web", 3)
    assert (scale_set["sku"]["name"], scale_set["sku"]["capacity"]) == ("Standard_B1s", 3)
    subnet = scale_set["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0][
        "properties"]["subnet"]["id"]
    assert subnet.endswith("/virtualNetworks/webVNET/subnets/webSubnet")
    # What az made is there, and the deployment says what it did.
    assert az.json("network", "vnet", "show", "-g", "rg-uniform", "-n", "webVNET")["name"] == \
        "webVNET"
    [deployment] = az.json("deployment", "group", "list", "-g", "rg-uniform")
    assert deployment["name"].startswith("vmss_deploy_")
    assert deployment["properties"]["provisioningState"] == "Succeeded"
    ops = az.json("deployment", "operation", "group", "list", "-g", "rg-uniform",
                  "-n", deployment["name"])
    assert sorted(o["properties"]["targetResource"]["resourceType"] for o in ops) == [
        "Microsoft.Compute/virtualMachineScaleSets", "Microsoft.Network/virtualNetworks"]
    assert az.json("vmss", "list-instances", "-g", "rg-uniform", "-n", "web", "--query",
                   "length(@)") == 3


@needs_az
def test_az_vmss_create_with_its_defaults(server: Server, tmp_path: Path) -> None:
    """az's defaults: Flexible orchestration, a Standard load balancer with a public IP, a
    network security group and a NAT rule. Every one of those types is served, so the
    deployment succeeds (a refusal names the types it does not serve: the failure says so)."""
    az = signed_in(server, tmp_path / "azure")
    az.json("group", "create", "-n", "rg-defaults", "-l", "westus")
    done = az.run("vmss", "create", "-g", "rg-defaults", "-n", "web", "--image", IMAGE,
                  "--instance-count", "2", "--upgrade-policy-mode", "Automatic",
                  "--admin-username", "azureuser", "--admin-password", "Never-Echo-12!",
                  "-o", "json")
    assert done.returncode == 0, \
        f"types not served: {sorted(missing_types(done.stderr))}\n{done.stderr}"
    assert json.loads(done.stdout)["vmss"]["provisioningState"] == "Succeeded"
    scale_set = wait_running(server, "rg-defaults", "web", 2)
    assert scale_set["properties"]["upgradePolicy"]["mode"] == "Automatic"


def test_the_python_sdk_deploys_the_template_az_sends(server: Server) -> None:
    """azure-mgmt-resource-deployments' begin_create_or_update with az's Uniform template,
    trimmed to the types served (the virtual network and the scale set)."""
    deployments = pytest.importorskip("azure.mgmt.resource.deployments")
    from azure.core.credentials import AccessToken

    class Token:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(server.token, int(time.time()) + 3600)

    sent = json.loads((AZ_TEMPLATES / "vmss_uniform.json").read_text())["properties"]
    template = sent["template"]
    template["resources"] = [r for r in template["resources"] if r["type"] in (
        "Microsoft.Network/virtualNetworks", "Microsoft.Compute/virtualMachineScaleSets")]
    vmss = template["resources"][-1]
    vmss["dependsOn"] = ["Microsoft.Network/virtualNetworks/webVNET"]
    ip = vmss["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"][0]["properties"]
    ip.pop("networkSecurityGroup")
    ip["ipConfigurations"][0]["properties"].pop("loadBalancerBackendAddressPools")
    for r in template["resources"]:  # the captured ids name az's test subscription and group
        text = json.dumps(r).replace("00000000-0000-0000-0000-000000000001",
                                     DEFAULT_SUBSCRIPTION).replace("/resourceGroups/rg/",
                                                                   "/resourceGroups/rg-sdk/")
        r.clear()
        r.update(json.loads(text))
    with server.http() as http:
        r = http.put(f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourcegroups/rg-sdk{RV}",
                     json={"location": "westus"})
        assert r.status_code in (200, 201), r.text
    client = deployments.DeploymentsMgmtClient(
        Token(), DEFAULT_SUBSCRIPTION, base_url=server.endpoint,
        connection_verify=str(server.ca), credential_scopes=[server.endpoint + "/.default"])
    poller = client.deployments.begin_create_or_update(
        "rg-sdk", "vmss_deploy_sdk", {"properties": {
            "template": template, "parameters": sent["parameters"], "mode": "Incremental"}},
        polling_interval=0.2)
    result = poller.result(timeout=120)
    assert result.properties.provisioning_state == "Succeeded"
    assert result.properties.outputs["vmss"]["value"]["orchestrationMode"] == "Uniform"
    ops = list(client.deployment_operations.list_at_scope(
        f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-sdk", "vmss_deploy_sdk"))
    assert len(ops) == 2
    wait_running(server, "rg-sdk", "web", 3)
