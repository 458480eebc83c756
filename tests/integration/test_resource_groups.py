"""``Microsoft.Resources/resourceGroups`` and the resources in them, over the ARM routes."""

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
GROUPS = f"/subscriptions/{SUB}/resourcegroups"  # az sends it lower-cased
RV = "?api-version=2024-11-01"
CV = "?api-version=2026-04-01"
NV = "?api-version=2024-07-01"


def compute(group: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute"


def network(group: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Network"


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


def names(client: TestClient, url: str) -> list[str]:
    """Every item's name, following nextLink."""
    out: list[str] = []
    while url:
        page = client.get(url).json()
        out += [item["name"] for item in page["value"]]
        url = page.get("nextLink", "")
    return out


# -- the group itself --------------------------------------------------------------------

def test_create_show_update_and_exists(client: TestClient) -> None:
    r = client.put(f"{GROUPS}/web{RV}", json={"location": "westus", "tags": {"env": "dev"}})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": f"/subscriptions/{SUB}/resourceGroups/web", "name": "web",
                        "type": "Microsoft.Resources/resourceGroups", "location": "westus",
                        "tags": {"env": "dev"}, "properties": {"provisioningState": "Succeeded"}}
    again = client.put(f"{GROUPS}/WEB{RV}", json={"location": "West US", "tags": {"env": "qa"}})
    assert again.status_code == 200 and again.json()["name"] == "web"  # first spelling kept
    assert again.json()["tags"] == {"env": "qa"}
    shown = client.get(f"/subscriptions/{SUB}/resourceGroups/web{RV}").json()
    assert shown["tags"] == {"env": "qa"}
    patched = client.patch(f"{GROUPS}/web{RV}", json={"tags": {"team": "a"},
                                                      "managedBy": "/x/y"})
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"team": "a"} and patched.json()["managedBy"] == "/x/y"
    assert client.head(f"{GROUPS}/web{RV}").status_code == 204
    missing = client.head(f"{GROUPS}/nothing{RV}")
    assert missing.status_code == 404 and missing.content == b""


def test_the_location_of_a_group_cannot_change(client: TestClient) -> None:
    client.put(f"{GROUPS}/web{RV}", json={"location": "westus"})
    r = client.put(f"{GROUPS}/web{RV}", json={"location": "eastus"})
    assert r.status_code == 409
    assert error(r)["code"] == "InvalidResourceGroupLocation"
    assert "westus" in error(r)["message"]
    assert client.patch(f"{GROUPS}/web{RV}", json={"location": "eastus"}).status_code == 409


@pytest.mark.parametrize("name", ["ends.", "has space", "a" * 91, "semi;colon", "star*"])
def test_names_outside_arms_rules_are_refused(client: TestClient, name: str) -> None:
    r = client.put(f"{GROUPS}/{name}{RV}", json={"location": "westus"})
    assert r.status_code == 400, r.text
    assert error(r)["code"] == "InvalidResourceGroup"
    assert error(r)["target"] == "resourceGroupName"


@pytest.mark.parametrize("name", ["a", "web-(prod)_1.x", "a" * 90, "grüppe"])
def test_names_within_arms_rules_are_accepted(client: TestClient, name: str) -> None:
    assert client.put(f"{GROUPS}/{name}{RV}", json={"location": "westus"}).status_code == 201


def test_bad_bodies_name_the_field(client: TestClient) -> None:
    r = client.put(f"{GROUPS}/web{RV}", json={"tags": {}})
    assert r.status_code == 400 and error(r)["target"] == "location"
    many = {f"t{i}": "v" for i in range(51)}
    r = client.put(f"{GROUPS}/web{RV}", json={"location": "westus", "tags": many})
    assert r.status_code == 400 and error(r)["target"] == "tags"
    client.put(f"{GROUPS}/web{RV}", json={"location": "westus"})
    r = client.patch(f"{GROUPS}/web{RV}", json={"tags": {"k": "v" * 257}})
    assert r.status_code == 400 and error(r)["target"] == "tags"


def test_unknown_group_is_resource_group_not_found(client: TestClient) -> None:
    for r in (client.get(f"{GROUPS}/nothing{RV}"), client.delete(f"{GROUPS}/nothing{RV}"),
              client.patch(f"{GROUPS}/nothing{RV}", json={"tags": {}}),
              client.get(f"{GROUPS}/nothing/resources{RV}")):
        assert r.status_code == 404, r.text
        assert error(r)["code"] == "ResourceGroupNotFound"


def test_api_versions_are_the_resources_calendar(client: TestClient) -> None:
    r = client.put(f"{GROUPS}/web?api-version=2026-04-01", json={"location": "westus"})
    assert r.status_code == 400 and error(r)["code"] == "InvalidApiVersionParameter"
    for version in ("2016-02-01", "2024-11-01", "2025-04-01"):
        assert client.get(f"{GROUPS}?api-version={version}").status_code == 200


def test_list_pages_and_filters_by_tag(client: TestClient) -> None:
    for i, env in enumerate(("dev", "prod", "dev")):
        client.put(f"{GROUPS}/g{i}{RV}", json={"location": "westus", "tags": {"Env": env}})
    # page_size 2: two pages; 'rg' holds the load balancer World.create made.
    assert names(client, f"{GROUPS}{RV}") == ["g0", "g1", "g2", "rg"]
    dev = f"{GROUPS}{RV}&$filter=tagName eq 'env' and tagValue eq 'dev'"
    assert names(client, dev) == ["g0", "g2"]
    assert names(client, f"{GROUPS}{RV}&$filter=tagname eq 'nope'") == []
    r = client.get(f"{GROUPS}{RV}&$filter=properties/x gt 3")
    assert r.status_code == 400 and error(r)["target"] == "$filter"


# -- groups that come into being with a resource -----------------------------------------

def test_a_resource_written_into_a_missing_group_creates_it(client: TestClient) -> None:
    r = client.put(f"{network('implicit')}/loadBalancers/lb1{NV}", json={"location": "eastus"})
    assert r.status_code == 201
    group = client.get(f"{GROUPS}/implicit{RV}").json()
    assert group["location"] == "eastus"
    assert group["properties"]["provisioningState"] == "Succeeded"
    assert "implicit" in names(client, f"{GROUPS}{RV}")


def test_resources_lists_what_a_group_holds(client: TestClient, world: World) -> None:
    client.put(f"{compute('app')}/virtualMachineScaleSets/vmss1{CV}",
               json={**scale_set_body(capacity=1), "tags": {"tier": "web"}})
    client.put(f"{network('app')}/loadBalancers/lb1{NV}", json={"location": "westus"})
    client.put(f"{network('other')}/loadBalancers/lb2{NV}", json={"location": "westus"})
    listed = client.get(f"{GROUPS}/app/resources{RV}&$expand=createdTime,provisioningState")
    assert listed.status_code == 200
    items = listed.json()["value"] + client.get(listed.json()["nextLink"]).json()["value"] \
        if "nextLink" in listed.json() else listed.json()["value"]
    assert sorted((i["type"], i["name"]) for i in items) == [
        ("Microsoft.Compute/virtualMachineScaleSets", "vmss1"),
        ("Microsoft.Network/loadBalancers", "lb1")]
    scale_set = next(i for i in items if i["name"] == "vmss1")
    assert scale_set["tags"] == {"tier": "web"} and scale_set["sku"]["capacity"] == 1
    assert "createdTime" in scale_set and "provisioningState" in scale_set
    # az resource list -g app asks the subscription with a filter.
    by_filter = f"/subscriptions/{SUB}/resources{RV}&$filter=resourceGroup eq 'APP'"
    assert sorted(names(client, by_filter)) == ["lb1", "vmss1"]
    typed = (f"/subscriptions/{SUB}/resources{RV}&$filter=resourceType eq "
             "'Microsoft.Network/loadBalancers'")
    assert sorted(names(client, typed)) == ["lb", "lb1", "lb2"]  # World made 'lb' in 'rg'


# -- deleting a group --------------------------------------------------------------------

def test_delete_removes_everything_in_the_group(client: TestClient, world: World) -> None:
    client.put(f"{GROUPS}/app{RV}", json={"location": "westus"})
    client.put(f"{compute('app')}/virtualMachineScaleSets/vmss1{CV}",
               json=scale_set_body(capacity=2))
    client.put(f"{network('app')}/loadBalancers/lb1{NV}", json={"location": "westus"})
    client.put(f"{compute('app')}/galleries/gal1?api-version=2025-03-03",
               json={"location": "westus"})
    client.put(f"{network('keep')}/loadBalancers/lb2{NV}", json={"location": "westus"})
    world.settle()
    (sid,) = [s for s in world.scale_set_ids() if "/resourcegroups/app/" in s]
    assert len(world.driver.instance_ids(sid)) == 2

    r = client.delete(f"{GROUPS}/app{RV}")
    assert r.status_code == 202
    assert r.headers["Azure-AsyncOperation"] and r.headers["Location"]
    status = client.get(r.headers["Azure-AsyncOperation"]).json()
    assert status["status"] == "InProgress"  # the scale set's instances are still there
    assert client.get(f"{GROUPS}/app{RV}").json()["properties"]["provisioningState"] == \
        "Deleting"
    # Everything but the scale set went at once; the scale set is being deleted.
    assert client.get(f"{network('app')}/loadBalancers/lb1{NV}").status_code == 404
    assert client.get(f"{compute('app')}/galleries/gal1?api-version=2025-03-03"
                      ).status_code == 404
    with world.store.transaction() as tx:
        row = tx.get_scale_set(sid)
    assert row is not None and row.model.properties.provisioning_state == "Deleting"
    # A new resource cannot go into a group being deleted.
    refused = client.put(f"{network('app')}/loadBalancers/lb3{NV}", json={"location": "westus"})
    assert refused.status_code == 409 and error(refused)["code"] == "ResourceGroupBeingDeleted"
    assert client.get(r.headers["Location"]).status_code == 202

    for _ in range(3):
        world.reconciler.reconcile(sid)
    assert world.driver.instance_ids(sid) == []
    assert client.get(r.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    assert client.get(r.headers["Location"]).status_code == 200
    assert client.get(f"{GROUPS}/app{RV}").status_code == 404
    assert client.head(f"{GROUPS}/app{RV}").status_code == 404
    assert "app" not in names(client, f"{GROUPS}{RV}")
    # Other groups keep their resources; the name can be used again.
    assert client.get(f"{network('keep')}/loadBalancers/lb2{NV}").status_code == 200
    assert client.put(f"{GROUPS}/app{RV}", json={"location": "eastus"}).status_code == 201


def test_a_group_without_scale_sets_is_gone_at_once(client: TestClient) -> None:
    client.put(f"{network('net')}/loadBalancers/lb1{NV}", json={"location": "westus"})
    r = client.delete(f"{GROUPS}/net{RV}")
    assert r.status_code == 202
    assert client.get(f"{GROUPS}/net{RV}").status_code == 404
    assert client.get(r.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    # A resource written into it afterwards brings a new group into being.
    client.put(f"{network('net')}/loadBalancers/lb1{NV}", json={"location": "eastus"})
    assert client.get(f"{GROUPS}/net{RV}").json()["location"] == "eastus"
