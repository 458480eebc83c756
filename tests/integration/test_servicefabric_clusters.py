"""``Microsoft.ServiceFabric/clusters`` over the ARM routes, and finding a scale set's cluster."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile import servicefabric
from scaleset.store.repository import Store
from tests.integration.test_requirements_api import VMSS, body, sf_extension
from tests.support import World

SUB = "00000000-0000-0000-0000-000000000001"
CLUSTERS = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ServiceFabric/clusters"
SFV = {"api-version": "2021-06-01"}
ENDPOINT = re.compile(r"^https://westus\.servicefabric\.azure\.com/runtime/clusters/"
                      r"[0-9a-f-]{36}$")


@pytest.fixture
def world(store: Store) -> World:
    return World.create(store)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    context = ApiContext(store=world.store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=2)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def cluster_body(*node_types: dict[str, Any], location: str = "westus") -> dict[str, Any]:
    return {"location": location, "tags": {"env": "test"}, "properties": {
        "managementEndpoint": "https://sf.example:19080", "reliabilityLevel": "silver",
        "certificate": {"thumbprint": "AB12", "x509StoreName": "My"},
        "nodeTypes": list(node_types) or [node_type("nt1", primary=True)]}}


def node_type(name: str, *, primary: bool = False, durability: str = "Silver"
              ) -> dict[str, Any]:
    return {"name": name, "isPrimary": primary, "vmInstanceCount": 5,
            "durabilityLevel": durability}


def error(r: Any) -> dict[str, Any]:
    return dict(r.json()["error"])


def test_a_cluster_is_created_read_listed_and_deleted(client: TestClient) -> None:
    r = client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body(
        node_type("nt1", primary=True), node_type("nt2", durability="gold")))
    assert r.status_code == 200, r.text
    cluster = r.json()
    props = cluster["properties"]
    assert cluster["id"] == f"{CLUSTERS}/sfc1" and cluster["name"] == "sfc1"
    assert cluster["type"] == "Microsoft.ServiceFabric/clusters"
    assert props["provisioningState"] == "Succeeded"
    assert ENDPOINT.match(props["clusterEndpoint"]), props["clusterEndpoint"]
    assert props["clusterEndpoint"].endswith(props["clusterId"])
    assert props["reliabilityLevel"] == "Silver"
    assert [n["durabilityLevel"] for n in props["nodeTypes"]] == ["Silver", "Gold"]
    assert props["nodeTypes"][0]["clientConnectionEndpointPort"] == 19000
    assert props["certificate"] == {"thumbprint": "AB12", "x509StoreName": "My"}  # kept as-is
    assert r.headers["ETag"] == cluster["etag"]
    # Keywords are case-insensitive; the generated id survives an update.
    lower = CLUSTERS.lower() + "/sfc1"
    got = client.get(lower, params=SFV).json()
    assert got["properties"]["clusterEndpoint"] == props["clusterEndpoint"]
    again = client.put(f"{CLUSTERS}/sfc1", params=SFV, json={
        **cluster_body(node_type("nt1", primary=True), node_type("nt2")),
        "properties": {**cluster_body()["properties"], "clusterEndpoint": "https://mine",
                       "nodeTypes": [node_type("nt1", primary=True), node_type("nt2")]}})
    assert again.status_code == 200
    assert again.json()["properties"]["clusterEndpoint"] == props["clusterEndpoint"]
    assert again.json()["etag"] != cluster["etag"]
    assert [c["name"] for c in client.get(CLUSTERS, params=SFV).json()["value"]] == ["sfc1"]
    everywhere = client.get(f"/subscriptions/{SUB}/providers/Microsoft.ServiceFabric/clusters",
                            params=SFV).json()["value"]
    assert [c["name"] for c in everywhere] == ["sfc1"]
    assert client.delete(f"{CLUSTERS}/sfc1", params=SFV).status_code == 200
    assert client.get(f"{CLUSTERS}/sfc1", params=SFV).status_code == 404
    assert client.delete(f"{CLUSTERS}/sfc1", params=SFV).status_code == 204


@pytest.mark.parametrize(("cluster", "target", "needle"), [
    (cluster_body(node_type("a"), node_type("b")), "properties.nodeTypes", "isPrimary"),
    (cluster_body(node_type("a", primary=True), node_type("A")), "properties.nodeTypes",
     "unique"),
    (cluster_body(node_type("a", primary=True, durability="Platinum")),
     "properties.nodeTypes[0].durabilityLevel", "Bronze, Silver, Gold"),
    ({"location": "westus", "properties": {"nodeTypes": [node_type("a", primary=True)]}},
     "properties.managementEndpoint", ""),
    ({"location": "westus", "properties": {"managementEndpoint": "https://x",
                                           "nodeTypes": []}}, "properties.nodeTypes", ""),
])
def test_an_invalid_cluster_is_refused_naming_the_field(client: TestClient,
                                                        cluster: dict[str, Any], target: str,
                                                        needle: str) -> None:
    r = client.put(f"{CLUSTERS}/badcluster", params=SFV, json=cluster)
    assert r.status_code == 400
    assert error(r)["code"] == "InvalidParameter" and error(r)["target"] == target, error(r)
    assert needle in error(r)["message"]
    assert client.get(f"{CLUSTERS}/badcluster", params=SFV).status_code == 404


def test_the_service_fabric_api_versions_are_checked(client: TestClient) -> None:
    r = client.get(f"{CLUSTERS}/sfc1", params={"api-version": "2026-04-01"})
    assert r.status_code == 400 and error(r)["code"] == "NoRegisteredProviderFound"
    assert "for type 'clusters'" in error(r)["message"]
    assert "2021-06-01" in error(r)["message"]
    for version in ("2018-02-01", "2020-03-01"):
        assert client.get(f"{CLUSTERS}/sfc1", params={"api-version": version}).status_code == 404


def test_the_location_cannot_change(client: TestClient) -> None:
    client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body())
    r = client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body(location="eastus"))
    assert r.status_code == 400 and error(r)["target"] == "location"


def test_a_cluster_in_use_cannot_be_deleted_nor_lose_the_node_type_in_use(
        client: TestClient, world: World) -> None:
    cluster = client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body(
        node_type("nt1", primary=True), node_type("nt2"))).json()
    endpoint = cluster["properties"]["clusterEndpoint"]
    r = client.put(f"{VMSS}/node1", params={"api-version": "2026-04-01"}, json=body(
        probe=None, extensions=[sf_extension(endpoint, node_type="nt2")]))
    assert r.status_code == 201, r.text
    with world.store.transaction() as tx:
        row = tx.get_scale_set(world.scale_set_ids()[0])
        assert row is not None
        found = servicefabric.cluster_of(tx, row.model)
    assert found is not None and found.name == "sfc1"
    r = client.delete(f"{CLUSTERS}/sfc1", params=SFV)
    assert r.status_code == 409 and error(r)["code"] == "OperationNotAllowed"
    assert "'node1'" in error(r)["message"]
    r = client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body(
        node_type("nt1", primary=True)))
    assert r.status_code == 400 and "'nt2'" in error(r)["message"]
    assert client.get(f"{CLUSTERS}/sfc1", params=SFV).json()["etag"] == cluster["etag"]
    # Dropping an unused node type is fine.
    assert client.put(f"{CLUSTERS}/sfc1", params=SFV, json=cluster_body(
        node_type("nt2", primary=True))).status_code == 200
