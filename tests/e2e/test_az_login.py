"""azure-cli, unmodified, signs in to a real ``scaleset serve`` with a service principal.

``az cloud register`` (endpoint discovery on, no ``--skip-endpoint-discovery``),
``az cloud set``, ``az login --service-principal`` (MSAL against the server's own
authority), then real calls. az trusts the server's generated CA through
``REQUESTS_CA_BUNDLE``, as a user would; its configuration lives in a temporary
``AZURE_CONFIG_DIR``. Skipped without ``SCALESET_TEST_AZ`` (the path of ``az``;
``make test`` sets it when ``make clients`` installed azure-cli).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.az import (
    AZ_MISSING,
    DEFAULT_SUBSCRIPTION,
    create_principal,
    registered,
    scaleset_cli,
)
from tests.e2e.server import Server, running_server

pytestmark = AZ_MISSING

RG = "rg-az"
V = "?api-version=2026-04-01"


def publish_and_create(server: Server, subscription: str, name: str) -> None:
    """A platform image version and a small Manual scale set using it, over the API."""
    base = f"/subscriptions/{subscription}/providers/Microsoft.Compute/locations/westus/" \
           "publishers/Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/" \
           "versions/1.0.0"
    scale_set = {
        "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 1},
        "properties": {"upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": {
            "osProfile": {"computerNamePrefix": "vm", "adminUsername": "azureuser",
                          "adminPassword": "Never-Echo-1"},
            "storageProfile": {"imageReference": {
                "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
                "version": "latest"}}}}}
    with server.http() as http:
        r = http.put(base + V, json={"location": "westus", "properties": {
            "osDiskImage": {"operatingSystem": "Linux"}}})
        assert r.status_code in (200, 201), r.text
        r = http.put(f"/subscriptions/{subscription}/resourceGroups/{RG}/providers/"
                     f"Microsoft.Compute/virtualMachineScaleSets/{name}{V}", json=scale_set)
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("az-login")) as s:
        publish_and_create(s, DEFAULT_SUBSCRIPTION, "web")
        yield s


def test_az_signs_in_with_a_service_principal_and_drives_the_server(server: Server,
                                                                    tmp_path: Path) -> None:
    sp = create_principal(server)
    az = registered(server, tmp_path / "azure")
    cloud = az.json("cloud", "show", "-n", "scaleset")
    assert cloud["endpoints"]["resourceManager"] == server.endpoint + "/"
    assert cloud["endpoints"]["activeDirectory"] == server.endpoint + "/adfs"

    accounts = az.json("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                       "--tenant", sp["tenant"])
    assert accounts[0]["id"] == DEFAULT_SUBSCRIPTION
    account = az.json("account", "show")
    assert account["id"] == DEFAULT_SUBSCRIPTION and account["tenantId"] == sp["tenant"]
    assert account["user"] == {"name": sp["appId"], "type": "servicePrincipal"}
    assert account["state"] == "Enabled" and account["environmentName"] == "scaleset"

    assert [s["name"] for s in az.json("vmss", "list", "-g", RG)] == ["web"]
    locations = az.json("account", "list-locations")
    assert "westus" in [loc["name"] for loc in locations]
    assert az.json("account", "list-locations", "--query",
                   "[?name=='westus'].displayName") == ["West US"]
    # Without -l az asks the subscription's locations and picks westus.
    images = az.json("vm", "image", "list", "--all", "-p", "Canonical", "-f", "UbuntuServer")
    assert [i["version"] for i in images] == ["1.0.0"]
    token = az.json("account", "get-access-token")
    assert token["tenant"] == sp["tenant"] and token["subscription"] == DEFAULT_SUBSCRIPTION


def test_a_deleted_principal_is_refused_although_az_holds_its_token(server: Server,
                                                                    tmp_path: Path) -> None:
    sp = create_principal(server, "reader")
    az = registered(server, tmp_path / "azure")
    az.json("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
            "--tenant", sp["tenant"])
    assert isinstance(az.json("vmss", "list"), list)
    # A reader may not write: the scale set stays.
    done = az.run("vmss", "delete", "-g", RG, "-n", "web", "--no-wait")
    assert done.returncode != 0 and "AuthorizationFailed" in done.stderr, done.stderr
    assert az.json("vmss", "show", "-g", RG, "-n", "web")["name"] == "web"

    deleted = scaleset_cli(server, "sp", "delete", sp["appId"])
    assert deleted.returncode == 0, deleted.stderr
    done = az.run("vmss", "list")
    assert done.returncode != 0
    assert "InvalidAuthenticationToken" in done.stderr, done.stderr


def test_a_wrong_password_fails_az_login_with_entra_ids_error(server: Server,
                                                              tmp_path: Path) -> None:
    sp = create_principal(server)
    az = registered(server, tmp_path / "azure")
    done = az.run("login", "--service-principal", "-u", sp["appId"], "-p", "not-it",
                  "--tenant", sp["tenant"])
    assert done.returncode != 0
    assert "AADSTS7000215" in done.stderr, done.stderr
