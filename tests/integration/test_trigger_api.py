"""The automatic trigger through the API: approveRollingUpgrade, pending statuses, windows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from scaleset.upgrade.timing import RolloutTiming
from tests.integration.test_api import RG, V, Api, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
WINDOW = {"daysOfWeek": ["Saturday", "Sunday"], "startTime": "02:00", "duration": "PT4H",
          "timeZone": "Europe/Berlin"}
WINDOWS_PATH = "properties.upgradePolicy.automaticOSUpgradePolicy.maintenanceWindows"


def make_api(store: Store, rollout: RolloutTiming) -> Iterator[Api]:
    world = World.create(store)
    world.settings = dataclasses.replace(world.settings, rollout_timing=rollout)
    world.restart()
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store, RolloutTiming())


@pytest.fixture
def delayed(store: Store) -> Iterator[Api]:
    yield from make_api(store, RolloutTiming(rollout_delay=timedelta(minutes=30)))


def scale_set(capacity: int = 4, **automatic_policy: Any) -> dict[str, Any]:
    b = body(capacity)
    b["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"].update(automatic_policy)
    return b


def create(api: Api, resource: dict[str, Any]) -> str:
    r = api.client.put(f"{VMSS}{V}", json=resource)
    assert r.status_code == 201, r.text
    sid = api.world.scale_set_ids()[0]
    api.world.reconciler.reconcile(sid)
    api.world.settle()
    return sid


def os_upgrade_statuses(api: Api) -> list[dict[str, Any]]:
    view = api.client.get(f"{VMSS}/instanceView{V}").json()
    return [s for s in view["statuses"] if s["code"].startswith("OSUpgrade/")]


def approve(api: Api, instance_ids: list[str] | None = None) -> Any:
    payload = None if instance_ids is None else {"instanceIds": instance_ids}
    return api.client.post(f"{VMSS}/approveRollingUpgrade{V}", json=payload)


def test_a_deferred_upgrade_shows_in_the_instance_view_until_approved(api: Api) -> None:
    sid = create(api, scale_set(osRollingUpgradeDeferral=True))
    nothing = approve(api)
    assert nothing.status_code == 409
    assert nothing.json()["error"]["code"] == "OperationNotAllowed"
    assert "Nothing to approve" in nothing.json()["error"]["message"]
    assert os_upgrade_statuses(api) == []

    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    [pending] = os_upgrade_statuses(api)
    assert pending["code"] == "OSUpgrade/AwaitingApproval"
    assert pending["level"] == "Warning"
    assert "1.1.0" in pending["message"] and "approveRollingUpgrade" in pending["message"]
    assert api.client.get(f"{VMSS}/rollingUpgrades/latest{V}").status_code == 404  # no run yet

    r = approve(api)
    assert r.status_code == 202, r.text
    assert r.headers["Azure-AsyncOperation"] and r.headers["Retry-After"] == "1"
    assert api.op(r)["status"] == "InProgress"
    api.settle()
    assert api.op(r)["status"] == "Succeeded"
    [run] = api.client.get(f"{VMSS}/osUpgradeHistory{V}").json()["value"]
    assert run["properties"]["startedBy"] == "Platform"
    assert run["properties"]["targetImageReference"]["version"] == "1.1.0"
    assert os_upgrade_statuses(api) == []
    assert approve(api).status_code == 409


def test_approving_some_instances_leaves_the_others_pending(api: Api) -> None:
    sid = create(api, scale_set(osRollingUpgradeDeferral=True))
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    unknown = approve(api, ["0", "77"])
    assert unknown.status_code == 404 and "77" in unknown.json()["error"]["message"]
    assert approve(api, ["0", "1"]).status_code == 202
    api.settle()
    vms = api.client.get(f"{VMSS}/virtualMachines{V}").json()["value"]
    versions = {vm["instanceId"]: vm["properties"]["storageProfile"]["imageReference"][
        "exactVersion"] for vm in vms}
    assert versions == {"0": "1.1.0", "1": "1.1.0", "2": "1.0.0", "3": "1.0.0"}
    [pending] = os_upgrade_statuses(api)
    assert pending["code"] == "OSUpgrade/AwaitingApproval"
    again = approve(api, ["0"])
    assert again.status_code == 409 and again.json()["error"]["target"] == "instanceIds"
    assert approve(api).status_code == 202
    api.settle()
    assert os_upgrade_statuses(api) == []


def test_a_scheduled_upgrade_shows_when_it_starts(delayed: Api) -> None:
    sid = create(delayed, scale_set())
    published = delayed.world.clock.now()
    delayed.world.publish("1.1.0")
    assert delayed.world.reconciler.reconcile(sid).active_run_id is None
    [pending] = os_upgrade_statuses(delayed)
    assert pending["code"] == "OSUpgrade/Scheduled"
    starts = (published + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert pending["time"] == starts and starts in pending["message"]
    approve_early = approve(delayed)
    assert approve_early.status_code == 409  # deferral is off: nothing ever awaits approval
    assert "osRollingUpgradeDeferral is off" in approve_early.json()["error"]["message"]


def test_maintenance_windows_are_stored_as_written_canonically(api: Api) -> None:
    window = {**WINDOW, "daysOfWeek": ["saturday", "SUNDAY"], "timeZone": "europe/berlin"}
    create(api, scale_set(maintenanceWindows=[window]))
    got = api.client.get(f"{VMSS}{V}").json()
    stored = got["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"]
    assert stored["maintenanceWindows"] == [WINDOW]


@pytest.mark.parametrize(("field", "value", "says"), [
    ("timeZone", "Mars/Olympus_Mons", "IANA"),
    ("duration", "PT10M", "at least PT1H"),
    ("startTime", "25:00", "HH:MM"),
    ("daysOfWeek", ["Caturday"], "day of the week"),
])
def test_a_bad_window_is_refused_at_put_and_nothing_is_stored(api: Api, field: str,
                                                              value: Any, says: str) -> None:
    r = api.client.put(f"{VMSS}{V}", json=scale_set(maintenanceWindows=[{**WINDOW,
                                                                          field: value}]))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert error["target"] == f"{WINDOWS_PATH}[0].{field}"
    assert says in error["message"]
    assert api.client.get(f"{VMSS}{V}").status_code == 404


def test_a_bad_window_is_refused_at_patch_and_the_model_is_unchanged(api: Api) -> None:
    create(api, scale_set(maintenanceWindows=[WINDOW]))
    before = api.client.get(f"{VMSS}{V}").json()
    patch = {"properties": {"upgradePolicy": {"automaticOSUpgradePolicy": {
        "maintenanceWindows": [WINDOW, {**WINDOW, "duration": "P2D"}]}}}}
    r = api.client.patch(f"{VMSS}{V}", json=patch)
    assert r.status_code == 400
    assert r.json()["error"]["target"] == f"{WINDOWS_PATH}[1].duration"
    assert "at most PT24H" in r.json()["error"]["message"]
    assert api.client.get(f"{VMSS}{V}").json() == before
