"""``Microsoft.Network/virtualNetworks`` and subnets over the ARM routes, and the scale sets
whose ip configurations name them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.integration.test_api import body as scale_set_body
from tests.support import World

SUB = "00000000-0000-0000-0000-000000000001"
NET = f"/subscriptions/{SUB}/resourceGroups/net/providers/Microsoft.Network"
VNETS = f"{NET}/virtualNetworks"
VMSS = f"/subscriptions/{SUB}/resourceGroups/app/providers/Microsoft.Compute/" \
       "virtualMachineScaleSets"
NV = "?api-version=2024-07-01"
CV = "?api-version=2026-04-01"
SUBNET_ID = f"{VNETS}/vnet1/subnets/default"
IPC_TARGET = ("properties.virtualMachineProfile.networkProfile.networkInterfaceConfigurations"
              "[0].properties.ipConfigurations[0].properties.subnet.id")


@pytest.fixture
def world(store: Store) -> World:
    return World.create(store)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    context = ApiContext(store=world.store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=2)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def error(r: Any) -> dict[str, Any]:
    payload = r.json()["error"]
    assert isinstance(payload, dict)
    return payload


def vnet_body(*subnets: tuple[str, str], space: str = "10.0.0.0/16",
              **extra: Any) -> dict[str, Any]:
    return {"location": "westus", **extra, "properties": {
        "addressSpace": {"addressPrefixes": [space]},
        "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets]}}


def vmss_with_subnet(subnet_id: str = SUBNET_ID, capacity: int = 2) -> dict[str, Any]:
    out = scale_set_body(capacity=capacity)
    out["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"] = [{"name": "nic", "properties": {
            "primary": True, "ipConfigurations": [{"name": "ipconfig", "properties": {
                "subnet": {"id": subnet_id}}}]}}]
    return out


# -- the network ---------------------------------------------------------------------------

def test_create_get_list_tag_and_delete(client: TestClient) -> None:
    r = client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("default", "10.0.0.0/24"),
                                                        tags={"a": "b"}))
    assert r.status_code == 201, r.text
    vnet = r.json()
    assert vnet["id"] == f"{VNETS}/vnet1" and vnet["type"] == "Microsoft.Network/virtualNetworks"
    assert vnet["properties"]["addressSpace"] == {"addressPrefixes": ["10.0.0.0/16"]}
    assert vnet["properties"]["provisioningState"] == "Succeeded"
    assert vnet["properties"]["resourceGuid"] and vnet["etag"].startswith('W/"')
    (subnet,) = vnet["properties"]["subnets"]
    assert subnet["id"] == SUBNET_ID and subnet["name"] == "default"
    assert subnet["type"] == "Microsoft.Network/virtualNetworks/subnets"
    assert subnet["properties"] == {"addressPrefix": "10.0.0.0/24",
                                    "provisioningState": "Succeeded"}
    assert r.headers["ETag"] == vnet["etag"]

    again = client.put(f"{VNETS}/VNET1{NV}", json=vnet_body(("default", "10.0.0.0/24")))
    assert again.status_code == 200 and again.json()["name"] == "vnet1"
    assert again.json()["properties"]["resourceGuid"] == vnet["properties"]["resourceGuid"]
    assert again.json()["etag"] != vnet["etag"]

    tagged = client.patch(f"{VNETS}/vnet1{NV}", json={"tags": {"env": "dev"}})
    assert tagged.status_code == 200 and tagged.json()["tags"] == {"env": "dev"}
    assert tagged.json()["properties"]["subnets"][0]["name"] == "default"

    client.put(f"{VNETS}/vnet2{NV}", json=vnet_body(space="10.1.0.0/16"))
    other = f"/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Network"
    client.put(f"{other}/virtualNetworks/vnet3{NV}", json=vnet_body())
    page = client.get(f"{VNETS}{NV}").json()  # page size 2
    assert [v["name"] for v in page["value"]] == ["vnet1", "vnet2"] and "nextLink" not in page
    everywhere = client.get(f"/subscriptions/{SUB}/providers/Microsoft.Network/"
                            f"virtualNetworks{NV}").json()
    assert "nextLink" in everywhere

    assert client.delete(f"{VNETS}/vnet1{NV}").status_code == 200
    assert client.get(f"{VNETS}/vnet1{NV}").status_code == 404
    assert error(client.get(f"{VNETS}/vnet1{NV}"))["code"] == "ResourceNotFound"
    assert client.delete(f"{VNETS}/vnet1{NV}").status_code == 204


@pytest.mark.parametrize(("body", "code", "target"), [
    (vnet_body(space="10.0.0.0/33"), "InvalidParameter",
     "properties.addressSpace.addressPrefixes"),
    (vnet_body(space="10.0.0.1/16"), "InvalidParameter",
     "properties.addressSpace.addressPrefixes"),
    (vnet_body(space="not-a-cidr"), "InvalidParameter",
     "properties.addressSpace.addressPrefixes"),
    ({"location": "westus", "properties": {}}, "InvalidRequestFormat",
     "properties.addressSpace.addressPrefixes"),
    (vnet_body(("a", "10.1.0.0/24")), "NetcfgSubnetRangeOutsideVnet",
     "properties.subnets[0].properties.addressPrefix"),
    (vnet_body(("a", "10.0.0.0/24"), ("b", "10.0.0.128/25")), "NetcfgSubnetRangesOverlap",
     "properties.subnets[1].properties.addressPrefix"),
    (vnet_body(("a", "10.0.0.0/24"), ("A", "10.0.1.0/24")), "InvalidRequestFormat",
     "properties.subnets[1].name"),
    (vnet_body(("-bad", "10.0.0.0/24")), "InvalidResourceName", "properties.subnets[0].name"),
    ({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": [
        "10.0.0.0/16", "10.0.128.0/17"]}}}, "VnetAddressSpacesOverlap",
     "properties.addressSpace.addressPrefixes"),
    ({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": [
        "10.0.0.0/16"]}, "subnets": [{"name": "a", "properties": {}}]}},
     "InvalidRequestFormat", "properties.subnets[0].properties.addressPrefix"),
])
def test_bad_layouts_are_refused_naming_the_field(client: TestClient, body: dict[str, Any],
                                                  code: str, target: str) -> None:
    r = client.put(f"{VNETS}/vnet1{NV}", json=body)
    assert r.status_code == 400, r.text
    assert error(r)["code"] == code
    assert error(r)["target"].startswith(target), error(r)
    assert client.get(f"{VNETS}/vnet1{NV}").status_code == 404  # nothing stored


def test_a_bad_network_name_is_refused(client: TestClient) -> None:
    r = client.put(f"{VNETS}/v{NV}", json=vnet_body())  # 2-64 characters
    assert r.status_code == 400 and error(r)["code"] == "InvalidResourceName"


def test_ipv6_ranges_are_checked_too(client: TestClient) -> None:
    body = {"location": "westus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16", "fd00:db8::/48"]},
        "subnets": [{"name": "dual", "properties": {
            "addressPrefixes": ["10.0.0.0/24", "fd00:db8::/64"]}}]}}
    assert client.put(f"{VNETS}/vnet1{NV}", json=body).status_code == 201
    body["properties"]["subnets"][0]["properties"]["addressPrefixes"][1] = "fd00:dead::/64"
    r = client.put(f"{VNETS}/vnet1{NV}", json=body)
    assert r.status_code == 400 and error(r)["code"] == "NetcfgSubnetRangeOutsideVnet"


# -- subnets -------------------------------------------------------------------------------

def test_subnets_on_their_own(client: TestClient) -> None:
    client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("default", "10.0.0.0/24")))
    r = client.put(f"{VNETS}/vnet1/subnets/web{NV}",
                   json={"properties": {"addressPrefix": "10.0.1.0/24"}})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == f"{VNETS}/vnet1/subnets/web"
    assert r.json()["properties"]["provisioningState"] == "Succeeded"
    updated = client.put(f"{VNETS}/vnet1/subnets/web{NV}",
                         json={"properties": {"addressPrefix": "10.0.2.0/24"}})
    assert updated.status_code == 200
    assert updated.json()["properties"]["addressPrefix"] == "10.0.2.0/24"
    listed = client.get(f"{VNETS}/vnet1/subnets{NV}").json()
    assert [s["name"] for s in listed["value"]] == ["default", "web"]
    shown = client.get(f"{VNETS}/vnet1/subnets/WEB{NV}").json()
    assert shown["name"] == "web" and shown["etag"] == \
        client.get(f"{VNETS}/vnet1{NV}").json()["etag"]
    overlapping = client.put(f"{VNETS}/vnet1/subnets/db{NV}",
                             json={"properties": {"addressPrefix": "10.0.0.0/23"}})
    assert overlapping.status_code == 400
    assert error(overlapping)["code"] == "NetcfgSubnetRangesOverlap"
    no_range = client.put(f"{VNETS}/vnet1/subnets/db{NV}", json={"properties": {}})
    assert no_range.status_code == 400 and error(no_range)["target"] == \
        "properties.addressPrefix"
    assert client.put(f"{VNETS}/nothing/subnets/db{NV}", json={"properties": {
        "addressPrefix": "10.0.5.0/24"}}).status_code == 404
    assert client.delete(f"{VNETS}/vnet1/subnets/web{NV}").status_code == 200
    assert client.get(f"{VNETS}/vnet1/subnets/web{NV}").status_code == 404
    assert client.delete(f"{VNETS}/vnet1/subnets/web{NV}").status_code == 204


# -- scale sets in subnets -----------------------------------------------------------------

def test_a_scale_set_naming_a_missing_subnet_is_refused(client: TestClient) -> None:
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet())
    assert r.status_code == 400
    assert error(r)["code"] == "InvalidResourceReference"
    assert error(r)["target"] == IPC_TARGET
    assert SUBNET_ID in error(r)["message"]
    client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("other", "10.0.0.0/24")))
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet())  # the network, not the subnet
    assert r.status_code == 400 and error(r)["code"] == "InvalidResourceReference"
    assert client.get(f"{VMSS}/vmss1{CV}").status_code == 404


def test_a_malformed_subnet_id_is_refused(client: TestClient) -> None:
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet(f"{VNETS}/vnet1"))
    assert r.status_code == 400
    assert error(r)["code"] == "LinkedInvalidPropertyId" and error(r)["target"] == IPC_TARGET


def test_a_subnet_in_another_region_is_refused(client: TestClient) -> None:
    client.put(f"{VNETS}/vnet1{NV}", json={**vnet_body(("default", "10.0.0.0/24")),
                                           "location": "eastus"})
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet())
    assert r.status_code == 400 and error(r)["code"] == "InvalidResourceReference"
    assert "same region" in error(r)["message"]


def test_subnet_lists_the_scale_sets_ip_configurations_and_cannot_go(
        client: TestClient, world: World) -> None:
    client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("default", "10.0.0.0/24"),
                                                    ("spare", "10.0.1.0/24")))
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet(SUBNET_ID.upper()
                                                              .replace("SUBSCRIPTIONS",
                                                                       "subscriptions")))
    assert r.status_code == 201, r.text
    world.settle()
    subnet = client.get(f"{VNETS}/vnet1/subnets/default{NV}").json()
    assert subnet["properties"]["ipConfigurations"] == [
        {"id": f"{VMSS}/vmss1/virtualMachines/{i}/networkInterfaces/nic/ipConfigurations/"
               "ipconfig"} for i in ("0", "1")]
    assert "ipConfigurations" not in \
        client.get(f"{VNETS}/vnet1/subnets/spare{NV}").json()["properties"]
    in_vnet = client.get(f"{VNETS}/vnet1{NV}").json()["properties"]["subnets"][0]
    assert len(in_vnet["properties"]["ipConfigurations"]) == 2

    for refused in (client.delete(f"{VNETS}/vnet1/subnets/default{NV}"),
                    client.delete(f"{VNETS}/vnet1{NV}"),
                    client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("spare", "10.0.1.0/24")))):
        assert refused.status_code == 400, refused.text
        assert error(refused)["code"] == "InUseSubnetCannotBeDeleted"
        assert "vmss1" in error(refused)["message"]
    moved = client.put(f"{VNETS}/vnet1/subnets/default{NV}",
                       json={"properties": {"addressPrefix": "10.0.2.0/24"}})
    assert moved.status_code == 400 and error(moved)["code"] == "InUseSubnetCannotBeUpdated"
    # The unused subnet can go, and the scale set stays updatable.
    assert client.delete(f"{VNETS}/vnet1/subnets/spare{NV}").status_code == 200
    assert client.patch(f"{VMSS}/vmss1{CV}", json={"tags": {"x": "y"}}).status_code == 200

    sid = world.scale_set_ids()[0]
    client.delete(f"{VMSS}/vmss1{CV}")
    for _ in range(3):
        world.reconciler.reconcile(sid)
    assert client.get(f"{VMSS}/vmss1{CV}").status_code == 404
    assert client.delete(f"{VNETS}/vnet1/subnets/default{NV}").status_code == 200


def test_changing_the_subnet_of_a_scale_set_is_checked(client: TestClient) -> None:
    client.put(f"{VNETS}/vnet1{NV}", json=vnet_body(("default", "10.0.0.0/24")))
    assert client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet()).status_code == 201
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_with_subnet(f"{VNETS}/vnet1/subnets/nope"))
    assert r.status_code == 400 and error(r)["code"] == "InvalidResourceReference"
