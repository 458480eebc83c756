"""A PUT on an existing scale set changes what it names and keeps what it leaves out,
as the Compute resource provider does (``az vmss scale`` PUTs only location and sku)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

URL = f"{RG}/virtualMachineScaleSets/vmss1{V}"


@pytest.fixture
def api(store: Store) -> Iterator[tuple[World, TestClient]]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield world, client


def _created(world: World, client: TestClient) -> dict[str, Any]:
    assert client.put(URL, json=body(capacity=2)).status_code == 201
    world.settle()
    got = client.get(URL).json()
    assert isinstance(got, dict)
    return got


def _without(resource: dict[str, Any], *paths: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1])
    return out


def test_a_put_of_location_and_sku_only_scales_and_keeps_everything_else(
        api: tuple[World, TestClient]) -> None:
    world, client = api
    before = _created(world, client)
    r = client.put(URL, json={"location": "westus",
                              "sku": {"name": "Standard_D2s_v3", "capacity": 3}})
    assert r.status_code == 200, r.text
    world.settle()
    after = client.get(URL).json()
    assert after["sku"]["capacity"] == 3
    # Image, probe, extensions, policy and automatic OS upgrade: all as they were.
    assert after["properties"]["virtualMachineProfile"] == \
        before["properties"]["virtualMachineProfile"]
    assert after["properties"]["upgradePolicy"] == before["properties"]["upgradePolicy"]
    assert after["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
        "enableAutomaticOSUpgrade"] is True
    instances = client.get(f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines{V}").json()
    assert len(instances["value"]) == 3
    assert all(i["properties"]["latestModelApplied"] for i in instances["value"])


def test_a_full_put_without_the_image_reference_keeps_the_image(
        api: tuple[World, TestClient]) -> None:
    world, client = api
    before = _created(world, client)
    sent = _without(before, ("properties", "virtualMachineProfile", "storageProfile",
                             "imageReference"))
    sent["tags"] = {"team": "web"}
    r = client.put(URL, json=sent)
    assert r.status_code == 200, r.text
    after = client.get(URL).json()
    assert after["tags"] == {"team": "web"}
    assert after["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] == \
        before["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]


def test_a_put_changes_exactly_what_it_names_and_null_removes(
        api: tuple[World, TestClient]) -> None:
    world, client = api
    before = _created(world, client)
    r = client.put(URL, json={"location": "westus", "properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"pauseTimeBetweenBatches": "PT5S"}}}})
    assert r.status_code == 200, r.text
    after = client.get(URL).json()
    assert after["properties"]["upgradePolicy"]["rollingUpgradePolicy"][
        "pauseTimeBetweenBatches"] == "PT5S"
    assert after["properties"]["upgradePolicy"]["mode"] == "Rolling"
    assert after["sku"] == before["sku"]
    r = client.put(URL, json={"location": "westus", "tags": {"a": "b"}})
    r = client.put(URL, json={"location": "westus", "tags": None})
    assert r.status_code == 200, r.text
    assert not client.get(URL).json().get("tags")
