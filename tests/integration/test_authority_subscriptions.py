"""ARM's subscription-level reads and the cloud metadata az registers a cloud from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile.subscriptions import DEFAULT_SUBSCRIPTION
from scaleset.security import authority
from scaleset.store.repository import Store
from tests.integration.test_api import SUB, V, body
from tests.support import World

BASE = "https://testserver"
SV = "?api-version=2022-12-01"


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url=BASE) as c:
        yield c


def _tenant(c: TestClient) -> str:
    store: Store = c.app.state.context.store  # type: ignore[attr-defined]
    return authority.server_identity(store, now=c.app.state.context.clock.now()).tenant_id  # type: ignore[attr-defined]


def test_subscriptions_are_the_default_one_and_those_holding_resources(client: TestClient
                                                                       ) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    r = client.put(f"/subscriptions/{other}/resourceGroups/rg9/providers/Microsoft.Compute/"
                   f"virtualMachineScaleSets/elsewhere{V}", json=body())
    assert r.status_code in (200, 201), r.text
    listed = client.get(f"/subscriptions{SV}")
    assert listed.status_code == 200, listed.text
    ids = [s["subscriptionId"] for s in listed.json()["value"]]
    assert ids[0] == DEFAULT_SUBSCRIPTION
    assert {SUB, other} <= set(ids)
    assert len(ids) == len(set(ids))
    tenant = _tenant(client)
    first: dict[str, Any] = listed.json()["value"][0]
    assert first == {
        "id": f"/subscriptions/{DEFAULT_SUBSCRIPTION}", "authorizationSource": "RoleBased",
        "managedByTenants": [], "subscriptionId": DEFAULT_SUBSCRIPTION, "tenantId": tenant,
        "displayName": "scaleset", "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                 "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}}
    one = client.get(f"/subscriptions/{other.upper()}{SV}")
    assert one.status_code == 200 and one.json()["subscriptionId"] == other


def test_an_unknown_subscription_is_404_subscription_not_found(client: TestClient) -> None:
    r = client.get(f"/subscriptions/99999999-0000-0000-0000-000000000000{SV}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "SubscriptionNotFound"
    r = client.get(f"/subscriptions/99999999-0000-0000-0000-000000000000/locations{SV}")
    assert r.status_code == 404


def test_locations_are_the_regions_in_use_in_arms_shape(client: TestClient) -> None:
    r = client.put(f"/subscriptions/{SUB}/resourcegroups/rg-eu?api-version=2024-11-01",
                   json={"location": "West Europe"})
    assert r.status_code in (200, 201), r.text
    r = client.get(f"/subscriptions/{SUB}/locations{SV}")
    assert r.status_code == 200, r.text
    by_name = {loc["name"]: loc for loc in r.json()["value"]}
    assert {"westus", "westeurope"} <= set(by_name)
    assert by_name["westeurope"] == {
        "id": f"/subscriptions/{SUB}/locations/westeurope", "name": "westeurope",
        "type": "Region", "displayName": "West Europe",
        "regionalDisplayName": "(Europe) West Europe",
        "metadata": {"regionType": "Physical", "regionCategory": "Other",
                     "geographyGroup": "Europe"}}


def test_tenants_list_the_authoritys_tenant(client: TestClient) -> None:
    r = client.get(f"/tenants{SV}")
    assert r.status_code == 200, r.text
    (tenant,) = r.json()["value"]
    assert tenant["tenantId"] == _tenant(client)
    assert tenant["id"] == f"/tenants/{tenant['tenantId']}"
    assert tenant["tenantCategory"] == "Home" and tenant["displayName"] == "scaleset"


@pytest.mark.parametrize("version", ["2016-06-01", "2019-11-01", "2021-01-01", "2022-12-01"])
def test_the_subscription_clients_api_versions_are_accepted(client: TestClient,
                                                            version: str) -> None:
    assert client.get(f"/subscriptions?api-version={version}").status_code == 200


def test_an_unknown_api_version_is_refused_with_the_choices(client: TestClient) -> None:
    r = client.get("/subscriptions?api-version=2099-01-01")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert "2022-12-01" in r.json()["error"]["message"]


def test_subscription_reads_need_a_token_when_auth_is_on(store: Store) -> None:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url=BASE) as c:
        assert c.get(f"/subscriptions{SV}").status_code == 401
        assert c.get(f"/tenants{SV}").status_code == 401
        # The cloud's metadata and the authority answer without one, as Azure's do.
        assert c.get("/metadata/endpoints?api-version=2022-09-01").status_code == 200
        assert c.get("/organizations/v2.0/.well-known/openid-configuration").status_code \
            == 200


def test_metadata_names_this_server_as_resource_manager_and_authority(client: TestClient
                                                                      ) -> None:
    r = client.get("/metadata/endpoints?api-version=2022-09-01")
    assert r.status_code == 200, r.text
    cloud = r.json()
    assert cloud["resourceManager"] == f"{BASE}/"
    assert cloud["authentication"]["loginEndpoint"] == f"{BASE}/adfs"
    assert cloud["authentication"]["audiences"][0] == f"{BASE}/"
    assert cloud["name"] and cloud["suffixes"] == {}
    # A trailing slash on the registered endpoint makes az ask //metadata/endpoints.
    assert client.get(f"{BASE}//metadata/endpoints?api-version=2022-09-01").json() == cloud
    assert client.get("/metadata/endpoints?api-version=2019-05-01").json() == [cloud]
    flat = client.get("/metadata/endpoints?api-version=2015-01-01").json()
    assert flat["authentication"] == {k: cloud["authentication"][k]
                                      for k in ("loginEndpoint", "audiences")}
    bad = client.get("/metadata/endpoints?api-version=2099-01-01")
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "api-version"
