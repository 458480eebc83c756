"""azure-cli, unmodified, against a live ``scaleset serve``: resource groups and networks.

``az group create/show/list/exists/update/delete``, ``az resource list -g``,
``az network vnet create/show/list``, ``az network vnet subnet create/show/list``,
``az network public-ip create/show`` and ``az network nsg create/show``, signed in
with a service principal. Skipped without ``SCALESET_TEST_AZ``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.az import AZ_MISSING, signed_in
from tests.e2e.server import Server, running_server

pytestmark = AZ_MISSING


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("az-network")) as s:
        yield s


def test_az_groups_end_to_end(server: Server, tmp_path: Path) -> None:
    az = signed_in(server, tmp_path / "azure")
    created = az.json("group", "create", "-n", "web-rg", "-l", "westus", "--tags", "env=dev")
    assert created["name"] == "web-rg" and created["location"] == "westus"
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["tags"] == {"env": "dev"}
    assert az.json("group", "exists", "-n", "web-rg") is True
    assert az.json("group", "exists", "-n", "no-such-rg") is False
    assert az.json("group", "show", "-n", "WEB-RG")["id"].endswith("/resourceGroups/web-rg")
    updated = az.json("group", "update", "-n", "web-rg", "--tags", "env=prod", "team=a")
    assert updated["tags"] == {"env": "prod", "team": "a"}
    az.ok("group", "create", "-n", "other-rg", "-l", "eastus")
    assert {g["name"] for g in az.json("group", "list")} >= {"web-rg", "other-rg"}
    assert [g["name"] for g in az.json("group", "list", "--tag", "team=a")] == ["web-rg"]
    missing = az.run("group", "show", "-n", "no-such-rg")
    assert missing.returncode != 0 and "ResourceGroupNotFound" in missing.stderr

    az.ok("network", "vnet", "create", "-g", "web-rg", "-n", "vnet1",
          "--address-prefixes", "10.0.0.0/16", "--subnet-name", "default",
          "--subnet-prefixes", "10.0.0.0/24")
    az.ok("network", "vnet", "subnet", "create", "-g", "web-rg", "--vnet-name", "vnet1",
          "-n", "web", "--address-prefixes", "10.0.1.0/24")
    az.ok("network", "public-ip", "create", "-g", "web-rg", "-n", "pip1", "--sku", "Standard")
    az.ok("network", "nsg", "create", "-g", "web-rg", "-n", "nsg1")
    overlapping = az.run("network", "vnet", "subnet", "create", "-g", "web-rg",
                         "--vnet-name", "vnet1", "-n", "db", "--address-prefixes",
                         "10.0.1.0/25")
    assert overlapping.returncode != 0 and "NetcfgSubnetRangesOverlap" in overlapping.stderr

    vnet = az.json("network", "vnet", "show", "-g", "web-rg", "-n", "vnet1")
    assert vnet["addressSpace"]["addressPrefixes"] == ["10.0.0.0/16"]
    assert [s["name"] for s in vnet["subnets"]] == ["default", "web"]
    assert [v["name"] for v in az.json("network", "vnet", "list", "-g", "web-rg")] == ["vnet1"]
    subnet = az.json("network", "vnet", "subnet", "show", "-g", "web-rg",
                     "--vnet-name", "vnet1", "-n", "web")
    assert subnet["addressPrefix"] == "10.0.1.0/24"
    assert subnet["provisioningState"] == "Succeeded"
    listed = az.json("network", "vnet", "subnet", "list", "-g", "web-rg", "--vnet-name",
                     "vnet1")
    assert [s["name"] for s in listed] == ["default", "web"]
    pip = az.json("network", "public-ip", "show", "-g", "web-rg", "-n", "pip1")
    assert pip["ipAddress"].startswith("100.") and pip["publicIPAllocationMethod"] == "Static"
    nsg = az.json("network", "nsg", "show", "-g", "web-rg", "-n", "nsg1")
    assert len(nsg["defaultSecurityRules"]) == 6

    resources = az.json("resource", "list", "-g", "web-rg")
    assert sorted((r["type"], r["name"]) for r in resources) == [
        ("Microsoft.Network/networkSecurityGroups", "nsg1"),
        ("Microsoft.Network/publicIPAddresses", "pip1"),
        ("Microsoft.Network/virtualNetworks", "vnet1")]

    az.ok("group", "delete", "-n", "web-rg", "--yes")
    assert az.json("group", "exists", "-n", "web-rg") is False
    assert az.run("network", "vnet", "show", "-g", "web-rg", "-n", "vnet1").returncode != 0
    assert az.json("group", "exists", "-n", "other-rg") is True
