"""sku.capacity is bounded per scale set, across the server and by the driver's room."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile.settings import Limits
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets"


class Room:
    """A driver's room that the test can fill: refuses growth beyond ``free``."""

    def __init__(self) -> None:
        self.free = 10**6
        self.asked: list[int] = []

    def __call__(self, more: int) -> str | None:
        self.asked.append(more)
        return None if more <= self.free else f"only {self.free} more fit in free memory"


@pytest.fixture
def room() -> Room:
    return Room()


@pytest.fixture
def client(store: Store, room: Room) -> Iterator[TestClient]:
    world = World.create(store)
    settings = dataclasses.replace(world.settings, limits=Limits(max_instances_total=12))
    context = ApiContext(store=store, clock=world.clock, settings=settings,
                         auth_required=False, instance_room=room)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def _error(response: Any) -> dict[str, Any]:
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


def _capacity(client: TestClient, name: str) -> int:
    r = client.get(f"{VMSS}/{name}{V}")
    assert r.status_code == 200
    return int(r.json()["sku"]["capacity"])


@pytest.mark.parametrize("value", [10**30, 2**63, 1001, -1, 2.5, True, "many"])
def test_a_capacity_out_of_range_is_a_400_by_patch_and_put_and_nothing_changes(
        client: TestClient, value: object) -> None:
    assert client.put(f"{VMSS}/vmss1{V}", json=body(capacity=2)).status_code == 201
    patch = client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": value}})
    put = client.put(f"{VMSS}/vmss1{V}", json={**body(), "sku": {"capacity": value}})
    for r in (patch, put):
        assert r.status_code == 400, r.text
        assert _error(r)["target"].endswith("capacity")
    assert _capacity(client, "vmss1") == 2
    fresh = client.put(f"{VMSS}/vmss2{V}", json={**body(), "sku": {"capacity": value}})
    assert fresh.status_code == 400
    assert client.get(f"{VMSS}/vmss2{V}").status_code == 404


def test_the_per_set_limit_is_worded_as_azure_words_it(client: TestClient) -> None:
    r = client.put(f"{VMSS}/vmss1{V}", json=body(capacity=1001))
    assert _error(r)["code"] == "InvalidParameter"
    assert _error(r)["message"].startswith(
        "The value 1001 of parameter 'sku.capacity' is out of range. The value must be "
        "between 0 and 1000, inclusive.")
    assert client.put(f"{VMSS}/vmss1{V}", json=body(capacity=10)).status_code == 201


def test_the_total_across_scale_sets_is_a_quota_error(client: TestClient) -> None:
    assert client.put(f"{VMSS}/vmss1{V}", json=body(capacity=8)).status_code == 201
    r = client.put(f"{VMSS}/vmss2{V}", json=body(capacity=5))
    assert r.status_code == 409
    error = _error(r)
    assert error["code"] == "OperationNotAllowed"
    for words in ("Current Limit: 12", "Current Usage: 8", "Additional Required: 5",
                  "--max-instances-total 13"):
        assert words in error["message"]
    assert client.get(f"{VMSS}/vmss2{V}").status_code == 404
    assert client.put(f"{VMSS}/vmss2{V}", json=body(capacity=4)).status_code == 201
    grow = client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": 9}})
    assert grow.status_code == 409 and _capacity(client, "vmss1") == 8
    # Scaling in and other changes still go through at the limit.
    assert client.patch(f"{VMSS}/vmss1{V}", json={"tags": {"a": "b"}}).status_code == 200
    assert client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": 7}}).status_code == 200


def test_the_drivers_room_refuses_growth_only(client: TestClient, room: Room) -> None:
    assert client.put(f"{VMSS}/vmss1{V}", json=body(capacity=2)).status_code == 201
    assert room.asked == [2]
    room.free = 1
    r = client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": 5}})
    assert r.status_code == 409
    assert _error(r)["code"] == "OperationNotAllowed"
    assert "only 1 more fit in free memory" in _error(r)["message"]
    assert _capacity(client, "vmss1") == 2
    assert client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": 1}}).status_code == 200
    assert room.asked == [2, 3]  # scaling in asks nothing
    room.free = 10
    assert client.patch(f"{VMSS}/vmss1{V}", json={"sku": {"capacity": 3}}).status_code == 200
    assert _capacity(client, "vmss1") == 3
