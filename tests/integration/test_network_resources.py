"""What a default ``az vmss create`` deploys, resource by resource, as its template's bodies
reach the routes (``_template_builder.build_vnet_resource``, ``build_public_ip_resource``,
``build_nsg_resource``, ``build_load_balancer_resource``, ``build_nat_rule_v2``, and the
scale set's network profile), with template expressions resolved as ARM resolves them."""

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
NET = f"/subscriptions/{SUB}/resourceGroups/demo/providers/Microsoft.Network"
VMSS = f"/subscriptions/{SUB}/resourceGroups/demo/providers/Microsoft.Compute/" \
       "virtualMachineScaleSets/web"
LB = f"{NET}/loadBalancers/webLB"
TEMPLATE_NV = "?api-version=2022-01-01"  # get_target_network_api for the 'latest' profile
OLD_NV = "?api-version=2015-06-15"  # the template's virtual network and security group
CV = "?api-version=2026-04-01"
RV = "?api-version=2024-11-01"

VNET = {"location": "westus", "tags": {}, "properties": {
    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
    "subnets": [{"name": "webSubnet", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}
PUBLIC_IP = {"location": "westus", "tags": {}, "sku": {"name": "Standard"},
             "properties": {"publicIPAllocationMethod": "Static"}}
NSG = {"location": "westus", "tags": {}, "properties": {"securityRules": [{
    "name": "default-allow-ssh", "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow",
        "priority": 1000, "direction": "Inbound"}}]}}
LOAD_BALANCER = {"location": "westus", "tags": {}, "sku": {"name": "Standard"}, "properties": {
    "backendAddressPools": [{"name": "webLBBEPool"}],
    "frontendIPConfigurations": [{"name": "loadBalancerFrontEnd", "properties": {
        "publicIPAddress": {"id": f"{NET}/publicIPAddresses/webLBPublicIP"}}}],
    "loadBalancingRules": [{"name": "LBRule", "properties": {
        "frontendIPConfiguration": {"id": f"{LB}/frontendIPConfigurations/loadBalancerFrontEnd"},
        "backendAddressPool": {"id": f"{LB}/backendAddressPools/webLBBEPool"},
        "protocol": "tcp", "frontendPort": 80, "backendPort": 80, "enableFloatingIP": False,
        "idleTimeoutInMinutes": 5}}]}}
NAT_RULE = {"location": "westus", "properties": {
    "frontendIPConfiguration": {"id": f"{LB}/frontendIPConfigurations/loadBalancerFrontEnd"},
    "backendAddressPool": {"id": f"{LB}/backendAddressPools/webLBBEPool"},
    "backendPort": 22, "frontendPortRangeStart": "50000", "frontendPortRangeEnd": "50119",
    "protocol": "tcp", "idleTimeoutInMinutes": 5}}
NIC = [{"name": "web1234Nic", "properties": {
    "ipConfigurations": [{"name": "web1234IPConfig", "properties": {
        "subnet": {"id": f"{NET}/virtualNetworks/webVNET/subnets/webSubnet"},
        "loadBalancerBackendAddressPools": [{"id": f"{LB}/backendAddressPools/webLBBEPool"}]}}],
    "networkSecurityGroup": {"id": f"{NET}/networkSecurityGroups/webNSG"},
    "primary": "true"}}]


@pytest.fixture
def world(store: Store) -> World:
    return World.create(store)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    context = ApiContext(store=world.store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=50)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def error(r: Any) -> dict[str, Any]:
    payload = r.json()["error"]
    assert isinstance(payload, dict)
    return payload


def deploy_network(client: TestClient) -> None:
    """The template's network resources, in its dependency order."""
    for url, body in ((f"{NET}/virtualNetworks/webVNET{OLD_NV}", VNET),
                      (f"{NET}/publicIPAddresses/webLBPublicIP{TEMPLATE_NV}", PUBLIC_IP),
                      (f"{NET}/networkSecurityGroups/webNSG{OLD_NV}", NSG),
                      (f"{LB}{TEMPLATE_NV}", LOAD_BALANCER),
                      (f"{LB}/inboundNatRules/NatRule{TEMPLATE_NV}", NAT_RULE)):
        r = client.put(url, json=body)
        assert r.status_code == 201, (url, r.text)


def scale_set() -> dict[str, Any]:
    out = scale_set_body(capacity=2)
    out["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"] = NIC
    return out


def test_the_templates_bodies_are_accepted_and_round_trip(client: TestClient) -> None:
    deploy_network(client)
    lb = client.get(f"{LB}{TEMPLATE_NV}").json()
    props = lb["properties"]
    assert lb["sku"] == {"name": "Standard"} and props["provisioningState"] == "Succeeded"
    (frontend,) = props["frontendIPConfigurations"]
    assert frontend["id"] == f"{LB}/frontendIPConfigurations/loadBalancerFrontEnd"
    assert frontend["type"] == "Microsoft.Network/loadBalancers/frontendIPConfigurations"
    assert frontend["properties"] == {
        "publicIPAddress": {"id": f"{NET}/publicIPAddresses/webLBPublicIP"},
        "provisioningState": "Succeeded"}
    assert props["backendAddressPools"][0]["id"] == f"{LB}/backendAddressPools/webLBBEPool"
    (rule,) = props["loadBalancingRules"]
    assert rule["properties"] == {**LOAD_BALANCER["properties"]["loadBalancingRules"][0][
        "properties"], "protocol": "Tcp", "provisioningState": "Succeeded"}
    (nat,) = props["inboundNatRules"]
    assert nat["id"] == f"{LB}/inboundNatRules/NatRule"
    assert nat["properties"]["frontendPortRangeStart"] == 50000  # the template's "50000"
    assert nat["properties"]["protocol"] == "Tcp"
    shown = client.get(f"{LB}/inboundNatRules/natrule{TEMPLATE_NV}").json()
    assert shown["name"] == "NatRule" and shown["etag"] == lb["etag"]
    # PUT of the GET body changes nothing but the etag.
    again = client.put(f"{LB}{TEMPLATE_NV}", json=lb)
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k != "etag"} == \
        {k: v for k, v in lb.items() if k != "etag"}

    pip = client.get(f"{NET}/publicIPAddresses/webLBPublicIP{TEMPLATE_NV}").json()
    assert pip["properties"]["ipAddress"] == "100.64.0.1"
    assert pip["properties"]["publicIPAllocationMethod"] == "Static"
    assert pip["properties"]["ipConfiguration"] == {"id": frontend["id"]}

    nsg = client.get(f"{NET}/networkSecurityGroups/webNSG{OLD_NV}").json()
    (ssh,) = nsg["properties"]["securityRules"]
    assert ssh["id"] == f"{NET}/networkSecurityGroups/webNSG/securityRules/default-allow-ssh"
    assert ssh["properties"]["provisioningState"] == "Succeeded"
    assert [r["name"] for r in nsg["properties"]["defaultSecurityRules"]] == [
        "AllowVnetInBound", "AllowAzureLoadBalancerInBound", "DenyAllInBound",
        "AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound"]
    assert client.get(f"{NET}/networkSecurityGroups/webNSG/securityRules/"
                      f"default-allow-ssh{OLD_NV}").json()["name"] == "default-allow-ssh"


def test_the_scale_set_of_the_template_is_checked_and_holds_what_it_uses(
        client: TestClient, world: World) -> None:
    deploy_network(client)
    r = client.put(f"{VMSS}{CV}", json=scale_set())
    assert r.status_code == 201, r.text
    world.settle()
    for refused, code in (
            (client.delete(f"{NET}/virtualNetworks/webVNET{OLD_NV}"),
             "InUseSubnetCannotBeDeleted"),
            (client.delete(f"{NET}/networkSecurityGroups/webNSG{OLD_NV}"),
             "InUseNetworkSecurityGroupCannotBeDeleted"),
            (client.delete(f"{LB}{TEMPLATE_NV}"), "LoadBalancerInUseByVirtualMachineScaleSet"),
            (client.delete(f"{NET}/publicIPAddresses/webLBPublicIP{TEMPLATE_NV}"),
             "PublicIPAddressInUse")):
        assert refused.status_code == 400, refused.text
        assert error(refused)["code"] == code

    # az group delete takes all of it.
    gone = client.delete(f"/subscriptions/{SUB}/resourcegroups/demo{RV}")
    assert gone.status_code == 202
    (sid,) = world.scale_set_ids()
    for _ in range(3):
        world.reconciler.reconcile(sid)
    assert client.get(gone.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    for url in (f"{NET}/virtualNetworks/webVNET{OLD_NV}", f"{LB}{TEMPLATE_NV}",
                f"{NET}/publicIPAddresses/webLBPublicIP{TEMPLATE_NV}",
                f"{NET}/networkSecurityGroups/webNSG{OLD_NV}", f"{VMSS}{CV}"):
        assert client.get(url).status_code == 404, url


@pytest.mark.parametrize(("key", "value", "code"), [
    ("subnet", f"{NET}/virtualNetworks/webVNET/subnets/nope", "InvalidResourceReference"),
    ("networkSecurityGroup", f"{NET}/networkSecurityGroups/nope", "InvalidResourceReference"),
    ("pool", f"{LB}/backendAddressPools/nope", "InvalidResourceReference"),
    ("pool", f"{NET}/loadBalancers/nope/backendAddressPools/webLBBEPool",
     "InvalidResourceReference"),
    ("networkSecurityGroup", "webNSG", "LinkedInvalidPropertyId"),
])
def test_each_reference_of_the_scale_set_is_checked(client: TestClient, key: str, value: str,
                                                    code: str) -> None:
    deploy_network(client)
    body = scale_set()
    nic = body["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"] = [dict(NIC[0])]
    nic_props = nic[0]["properties"] = {**NIC[0]["properties"]}
    ipc = nic_props["ipConfigurations"] = [{**NIC[0]["properties"]["ipConfigurations"][0]}]
    ipc_props = ipc[0]["properties"] = dict(ipc[0]["properties"])
    if key == "subnet":
        ipc_props["subnet"] = {"id": value}
    elif key == "pool":
        ipc_props["loadBalancerBackendAddressPools"] = [{"id": value}]
    else:
        nic_props["networkSecurityGroup"] = {"id": value}
    r = client.put(f"{VMSS}{CV}", json=body)
    assert r.status_code == 400, r.text
    assert error(r)["code"] == code
    assert error(r)["target"].startswith(
        "properties.virtualMachineProfile.networkProfile.networkInterfaceConfigurations[0]")


def test_a_frontend_must_name_an_existing_public_ip(client: TestClient) -> None:
    r = client.put(f"{LB}{TEMPLATE_NV}", json=LOAD_BALANCER)
    assert r.status_code == 400
    assert error(r)["code"] == "InvalidResourceReference"
    assert error(r)["target"] == \
        "properties.frontendIPConfigurations[0].properties.publicIPAddress.id"


def test_public_ip_rules(client: TestClient) -> None:
    url = f"{NET}/publicIPAddresses"
    r = client.put(f"{url}/a{TEMPLATE_NV}", json={"location": "westus", "sku": {
        "name": "standard"}, "properties": {"publicIPAllocationMethod": "dynamic"}})
    assert r.status_code == 400 and error(r)["target"] == \
        "properties.publicIPAllocationMethod"
    basic = client.put(f"{url}/a{TEMPLATE_NV}", json={"location": "westus", "sku": {
        "name": "Basic"}, "properties": {"dnsSettings": {"domainNameLabel": "myapp"}}})
    assert basic.status_code == 201
    props = basic.json()["properties"]
    assert props["publicIPAllocationMethod"] == "Dynamic" and props["ipAddress"] == "100.64.0.1"
    assert props["dnsSettings"]["fqdn"] == "myapp.westus.cloudapp.azure.com"
    second = client.put(f"{url}/b{TEMPLATE_NV}", json={"location": "westus"}).json()
    assert second["sku"]["name"] == "Standard"
    assert second["properties"]["ipAddress"] == "100.64.0.2"
    kept = client.put(f"{url}/a{TEMPLATE_NV}", json={"location": "westus",
                                                      "sku": {"name": "Basic"}}).json()
    assert kept["properties"]["ipAddress"] == "100.64.0.1"  # kept across a PUT
    client.delete(f"{url}/a{TEMPLATE_NV}")
    third = client.put(f"{url}/c{TEMPLATE_NV}", json={"location": "westus"}).json()
    assert third["properties"]["ipAddress"] == "100.64.0.1"  # the lowest free one
    bad_timeout = client.put(f"{url}/d{TEMPLATE_NV}", json={
        "location": "westus", "properties": {"idleTimeoutInMinutes": 31}})
    assert bad_timeout.status_code == 400
    ipv6 = client.put(f"{url}/e{TEMPLATE_NV}", json={
        "location": "westus", "properties": {"publicIPAddressVersion": "IPv6"}})
    assert ipv6.status_code == 400 and "IPv4" in error(ipv6)["message"]
    listed = client.get(f"{url}{TEMPLATE_NV}").json()["value"]
    assert sorted(p["name"] for p in listed) == ["b", "c"]
    tagged = client.patch(f"{url}/b{TEMPLATE_NV}", json={"tags": {"k": "v"}})
    assert tagged.json()["tags"] == {"k": "v"}


def test_security_rule_rules(client: TestClient) -> None:
    url = f"{NET}/networkSecurityGroups/nsg1{TEMPLATE_NV}"
    rule = NSG["properties"]["securityRules"][0]
    clash = {**rule, "name": "other"}
    r = client.put(url, json={"location": "westus", "properties": {
        "securityRules": [rule, clash]}})
    assert r.status_code == 400 and error(r)["code"] == "SecurityRuleConflict"
    low = {"name": "low", "properties": {**rule["properties"], "priority": 99}}
    r = client.put(url, json={"location": "westus", "properties": {"securityRules": [low]}})
    assert r.status_code == 400 and "priority" in error(r)["target"]
    wrong = {"name": "x", "properties": {**rule["properties"], "access": "Maybe"}}
    r = client.put(url, json={"location": "westus", "properties": {"securityRules": [wrong]}})
    assert r.status_code == 400 and "access" in error(r)["target"]
    outbound = {**clash, "properties": {**rule["properties"], "direction": "outbound"}}
    ok = client.put(url, json={"location": "westus", "properties": {
        "securityRules": [rule, outbound]}})
    assert ok.status_code == 201
    assert ok.json()["properties"]["securityRules"][1]["properties"]["direction"] == "Outbound"
