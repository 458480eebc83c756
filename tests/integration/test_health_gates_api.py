"""The whole-set health gate through the API (in process, on the virtual clock).

* instances outside the batch going unhealthy stop the run at the end of the batch;
* an automatic run waits for booting instances instead of faulting, records one
  failed attempt only after the health timeout, and is retried;
* a manual start over the gate fails at once;
* a version rolling out now is not shown as pending behind itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.model.instance import HealthState
from scaleset.store.repository import Store
from scaleset.upgrade.run import BEFORE_ROLLING_UPGRADE, IN_ROLLING_UPGRADE
from tests.integration.test_api import RG, V, Api, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
BOOTED = timedelta(seconds=60)  # simulated create: boot 30 s, healthy 20 s later


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


def create(api: Api, capacity: int = 10, *, wait_until_healthy: bool = True) -> str:
    # After the simulation's first instant new instances boot (Initializing, then Healthy).
    api.world.clock.advance_to(api.world.clock.now() + timedelta(seconds=1))
    r = api.client.put(f"{VMSS}{V}", json=body(capacity))
    assert r.status_code == 201, r.text
    [sid] = api.world.scale_set_ids()
    api.world.reconciler.reconcile(sid)
    if wait_until_healthy:
        later(api, sid, BOOTED)
    return sid


def later(api: Api, sid: str, by: timedelta) -> None:
    api.world.clock.advance_to(api.world.clock.now() + by)
    api.world.reconciler.reconcile(sid)


def latest(api: Api) -> dict[str, Any]:
    r = api.client.get(f"{VMSS}/rollingUpgrades/latest{V}")
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert isinstance(props, dict)
    return props


def history(api: Api) -> list[dict[str, Any]]:
    value = api.client.get(f"{VMSS}/osUpgradeHistory{V}").json()["value"]
    assert isinstance(value, list)
    return value


def os_upgrade_statuses(api: Api) -> list[dict[str, Any]]:
    view = api.client.get(f"{VMSS}/instanceView{V}").json()
    return [s for s in view["statuses"] if s["code"].startswith("OSUpgrade/")]


def iso(api: Api) -> str:
    return api.world.clock.now().isoformat().replace("+00:00", "Z")


# -- seed rule: concurrent unhealthiness stops the run at the end of the batch ---------------
def test_other_instances_going_unhealthy_during_a_batch_fault_the_run_after_it(api: Api) -> None:
    sid = create(api)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    assert latest(api)["runningStatus"]["code"] == "RollingForward"
    for iid in ("2", "3", "4"):  # not in batch 1 (0 and 5)
        api.world.driver.set_health(sid, iid, HealthState.UNHEALTHY)
    api.settle()
    props = latest(api)
    assert props["runningStatus"]["code"] == "Faulted"
    assert props["error"]["code"] == IN_ROLLING_UPGRADE
    assert "3 of 10" in props["error"]["message"]
    # The batch in flight finished; no other batch started.
    assert props["progress"]["successfulInstanceCount"] == 2
    assert props["progress"]["pendingInstanceCount"] == 8
    vms = api.client.get(f"{VMSS}/virtualMachines{V}").json()["value"]
    upgraded = sorted(vm["instanceId"] for vm in vms
                      if vm["properties"]["storageProfile"]["imageReference"]["exactVersion"]
                      == "1.1.0")
    assert upgraded == ["0", "5"]


# -- an automatic run waits for booting instances --------------------------------------------
def test_a_version_published_while_instances_boot_waits_then_rolls_out(api: Api) -> None:
    sid = create(api, wait_until_healthy=False)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    [status] = os_upgrade_statuses(api)
    assert status["code"] == "OSUpgrade/WaitingForHealthyInstances"
    assert "10 of 10 instances are unhealthy" in status["message"]
    assert status["time"] == iso(api)  # waiting since
    assert api.client.get(f"{VMSS}/rollingUpgrades/latest{V}").status_code == 404

    later(api, sid, BOOTED)  # booted and healthy: the gate clears and the run starts
    assert latest(api)["runningStatus"]["code"] == "RollingForward"
    api.settle()
    props = latest(api)
    assert props["runningStatus"]["code"] == "Completed"
    [run] = history(api)
    assert run["properties"]["startedBy"] == "Platform"
    assert run["properties"]["targetImageReference"]["version"] == "1.1.0"
    assert os_upgrade_statuses(api) == []


def test_a_set_over_the_gate_for_the_health_timeout_records_one_failed_attempt_then_retries(
        api: Api) -> None:
    sid = create(api)
    for iid in ("1", "2", "3"):
        api.world.driver.set_health(sid, iid, HealthState.UNHEALTHY)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    waiting_since = iso(api)
    [status] = os_upgrade_statuses(api)
    assert status["code"] == "OSUpgrade/WaitingForHealthyInstances"
    assert "3 of 10" in status["message"] and status["time"] == waiting_since

    later(api, sid, timedelta(minutes=5) - timedelta(seconds=1))
    assert history(api) == []  # still waiting, nothing failed yet
    later(api, sid, timedelta(seconds=1))
    [failed] = history(api)
    assert failed["properties"]["runningStatus"]["code"] == "Faulted"
    assert failed["properties"]["startedBy"] == "Platform"
    assert failed["properties"]["error"]["code"] == BEFORE_ROLLING_UPGRADE
    assert "3 of 10" in failed["properties"]["error"]["message"]
    assert failed["properties"]["runningStatus"]["startTime"] == waiting_since

    api.world.reconciler.reconcile(sid)  # waits again (no rollout delay on this server)
    [status] = os_upgrade_statuses(api)
    assert status["code"] == "OSUpgrade/WaitingForHealthyInstances"
    for iid in ("1", "2", "3"):
        api.world.driver.set_health(sid, iid, None)
    api.world.reconciler.reconcile(sid)
    api.settle()
    done, failed_again = history(api)  # newest first
    assert done["properties"]["runningStatus"]["code"] == "Completed"
    assert failed_again["properties"]["error"]["code"] == BEFORE_ROLLING_UPGRADE


def test_a_manual_start_over_the_gate_fails_at_once(api: Api) -> None:
    sid = create(api)
    api.world.publish("1.1.0", )
    api.world.settle(sid)  # 1.1.0 rolls out
    for iid in ("1", "2", "3"):
        api.world.driver.set_health(sid, iid, HealthState.UNHEALTHY)
    api.world.publish("1.2.0")
    api.world.reconciler.reconcile(sid)  # the automatic run waits...
    r = api.client.post(f"{VMSS}/osRollingUpgrade{V}")  # ...a manual one does not
    assert r.status_code == 202, r.text
    api.world.reconciler.reconcile(sid)
    props = latest(api)
    assert props["runningStatus"]["code"] == "Faulted"
    assert props["error"]["code"] == BEFORE_ROLLING_UPGRADE
    assert history(api)[0]["properties"]["startedBy"] == "User"


# -- the pending status tells the truth ------------------------------------------------------
def test_the_version_rolling_out_is_not_pending_behind_itself(api: Api) -> None:
    sid = create(api)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    assert latest(api)["runningStatus"]["code"] == "RollingForward"
    assert os_upgrade_statuses(api) == []
    api.world.publish("1.2.0")
    [status] = os_upgrade_statuses(api)
    assert status["code"] == "OSUpgrade/WaitingForRollingUpgrade"
    assert "1.2.0" in status["message"] and "1.1.0" not in status["message"]
