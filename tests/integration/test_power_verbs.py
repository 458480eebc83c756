"""Power and instance verbs over the API, in process, on the virtual clock (simulated driver).

start, powerOff, restart, deallocate, redeploy, reimageall and delete, on the scale set
and on one instance, as the Python SDK and az send them; each is an LRO that ends when
the instances are in the state asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile.loop import run_until
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
VMS = f"{VMSS}/virtualMachines"


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    @property
    def sid(self) -> str:
        return self.world.scale_set_ids()[0]

    def run(self, max_rounds: int = 400) -> None:
        """Passes until nothing more can change (every driver event applied)."""
        run_until(self.world.reconciler, self.world.clock, self.world.driver,
                  self.world.scale_set_ids(), done=lambda _r: False, max_rounds=max_rounds)

    def step(self) -> None:
        """One pass that acts (submits to the driver), one that sees what the driver does."""
        self.world.reconciler.reconcile(self.sid)
        self.world.reconciler.reconcile(self.sid)

    def status(self, response: Any) -> dict[str, Any]:
        got = self.client.get(response.headers["Azure-AsyncOperation"]).json()
        assert isinstance(got, dict)
        return got

    def power(self, instance_id: str) -> str:
        view = self.client.get(f"{VMS}/{instance_id}/instanceView{V}").json()
        codes = [s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/")]
        display = [s["displayStatus"] for s in view["statuses"]
                   if s["code"].startswith("PowerState/")]
        assert len(codes) == 1 and display == ["VM " + codes[0].split("/")[1]]
        return codes[0]

    def powers(self) -> dict[str, str]:
        return {i: self.power(i) for i in self.ids()}

    def ids(self) -> list[str]:
        return [vm["instanceId"] for vm in self.client.get(f"{VMS}{V}").json()["value"]]

    def health(self, instance_id: str) -> str:
        view = self.client.get(f"{VMS}/{instance_id}/instanceView{V}").json()
        code: str = view["vmHealth"]["status"]["code"]
        return code


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=50)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        a = Api(world, client)
        assert client.put(f"{VMSS}{V}", json=body(capacity=3)).status_code == 201
        a.run()
        assert a.powers() == {i: "PowerState/running" for i in ("0", "1", "2")}
        yield a


def _accepted(r: Any) -> None:
    assert r.status_code == 202, r.text
    assert r.content == b""
    assert r.headers["Location"].endswith("&monitor=true")
    assert r.headers["Retry-After"] == "1"
    assert "/operations/" in r.headers["Azure-AsyncOperation"]


def test_power_off_one_instance_is_an_lro_that_ends_when_it_is_stopped(api: Api) -> None:
    r = api.client.post(f"{VMS}/1/powerOff{V}")
    _accepted(r)
    assert api.status(r)["status"] == "InProgress"
    api.step()  # the driver starts stopping it
    assert api.power("1") == "PowerState/stopping"
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.client.get(r.headers["Location"]).status_code == 200
    assert api.powers() == {"0": "PowerState/running", "1": "PowerState/stopped",
                            "2": "PowerState/running"}
    # Stopped is down: unhealthy for every gate, and the list's instance view says so.
    assert api.health("1") == "HealthState/unhealthy"
    listed = api.client.get(f"{VMS}{V}&$expand=instanceView").json()["value"]
    codes = {vm["instanceId"]: [s["code"] for s in vm["properties"]["instanceView"]["statuses"]]
             for vm in listed}
    assert "PowerState/stopped" in codes["1"] and "PowerState/running" in codes["0"]
    summary = api.client.get(f"{VMSS}/instanceView{V}").json()["virtualMachine"][
        "statusesSummary"]
    assert {"code": "PowerState/stopped", "count": 1} in summary
    assert {"code": "PowerState/running", "count": 2} in summary


def test_start_boots_the_same_os_disk_without_running_custom_data_again(api: Api) -> None:
    disk = api.client.get(f"{VMS}/0{V}").json()["properties"]["storageProfile"]["osDisk"]
    api.client.post(f"{VMSS}/poweroff{V}", json={"instanceIds": ["0"]})
    api.run()
    assert api.power("0") == "PowerState/stopped"
    r = api.client.post(f"{VMS}/0/start{V}")
    _accepted(r)
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.power("0") == "PowerState/running"
    assert api.health("0") == "HealthState/healthy"
    after = api.client.get(f"{VMS}/0{V}").json()["properties"]["storageProfile"]["osDisk"]
    assert after == disk
    assert api.world.driver.custom_data_runs(api.sid, "0") == 1
    assert api.world.driver.reimage_count(api.sid, "0") == 0


def test_deallocate_the_whole_scale_set_then_start_it(api: Api) -> None:
    r = api.client.post(f"{VMSS}/deallocate{V}")
    _accepted(r)
    api.step()
    assert set(api.powers().values()) == {"PowerState/deallocating"}
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert set(api.powers().values()) == {"PowerState/deallocated"}
    summary = api.client.get(f"{VMSS}/instanceView{V}").json()["virtualMachine"][
        "statusesSummary"]
    assert {"code": "PowerState/deallocated", "count": 3} in summary
    r = api.client.post(f"{VMSS}/start{V}", json={"instanceIds": ["*"]})
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert set(api.powers().values()) == {"PowerState/running"}


def test_restart_and_redeploy_keep_disks_and_redeploy_moves_host(api: Api) -> None:
    r = api.client.post(f"{VMSS}/restart{V}", json={"instanceIds": ["0", "2"]})
    api.step()
    assert api.power("0") == "PowerState/stopping" and api.power("1") == "PowerState/running"
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert set(api.powers().values()) == {"PowerState/running"}
    assert api.world.driver.host_count(api.sid, "0") == 1
    r = api.client.post(f"{VMS}/2/redeploy{V}")
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.world.driver.host_count(api.sid, "2") == 2
    assert api.world.driver.reimage_count(api.sid, "2") == 0
    assert api.world.driver.data_disks(api.sid, "2") == {0: f"data:{api.sid}/2/lun0"}


def test_a_verb_that_changes_nothing_succeeds(api: Api) -> None:
    r = api.client.post(f"{VMS}/0/start{V}")
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.power("0") == "PowerState/running"
    api.client.post(f"{VMS}/0/deallocate{V}")
    api.run()
    # powerOff of a deallocated instance: it is off already, and stays deallocated.
    r = api.client.post(f"{VMS}/0/powerOff{V}&skipShutdown=true")
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.power("0") == "PowerState/deallocated"


def test_unknown_instances_are_refused_and_nothing_changes(api: Api) -> None:
    r = api.client.post(f"{VMSS}/poweroff{V}", json={"instanceIds": ["0", "9"]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter" and error["target"] == "instanceIds"
    assert error["message"] == ("The provided instanceId 9 is not an active Virtual Machine "
                                "Scale Set VM instanceId.")
    assert api.client.post(f"{VMS}/9/powerOff{V}").status_code == 404
    assert api.client.post(f"{VMSS}/delete{V}", json={"instanceIds": ["7"]}).status_code == 400
    bad = api.client.post(f"{VMSS}/start{V}", json={"instanceIds": "0"})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "instanceIds"
    assert api.client.post(f"{VMSS}/powerOff{V}&skipShutdown=maybe").status_code == 400
    api.run()
    assert set(api.powers().values()) == {"PowerState/running"}
    assert api.ids() == ["0", "1", "2"]


def test_a_newer_verb_preempts_the_older_one(api: Api) -> None:
    first = api.client.post(f"{VMS}/1/powerOff{V}")
    second = api.client.post(f"{VMS}/1/start{V}")
    api.run()
    assert api.status(second)["status"] == "Succeeded"
    failed = api.status(first)
    assert failed["status"] == "Failed" and failed["error"]["code"] == "OperationPreempted"
    assert api.power("1") == "PowerState/running"


def test_scale_set_verbs_skip_instances_protected_from_scale_set_actions(api: Api) -> None:
    vm = api.client.get(f"{VMS}/1{V}").json()
    vm["properties"]["protectionPolicy"] = {"protectFromScaleSetActions": True}
    assert api.client.put(f"{VMS}/1{V}", json=vm).status_code == 200
    api.client.post(f"{VMSS}/poweroff{V}")
    api.run()
    assert api.powers() == {"0": "PowerState/stopped", "1": "PowerState/running",
                            "2": "PowerState/stopped"}
    # Named explicitly, or on the instance itself, it is the user's choice.
    api.client.post(f"{VMS}/1/powerOff{V}")
    api.run()
    assert api.power("1") == "PowerState/stopped"


def test_delete_instances_ignores_scale_in_protection_and_may_delete_all(api: Api) -> None:
    vm = api.client.get(f"{VMS}/2{V}").json()
    vm["properties"]["protectionPolicy"] = {"protectFromScaleIn": True}
    api.client.put(f"{VMS}/2{V}", json=vm)
    missing = api.client.post(f"{VMSS}/delete{V}")
    assert missing.status_code == 400 and missing.json()["error"]["target"] == "instanceIds"
    r = api.client.post(f"{VMSS}/delete{V}&forceDeletion=true", json={"instanceIds": ["2"]})
    _accepted(r)
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.ids() == ["0", "1"]
    assert api.client.get(f"{VMSS}{V}").json()["sku"]["capacity"] == 2
    assert "2" not in api.world.driver.instance_ids(api.sid)
    r = api.client.post(f"{VMSS}/delete{V}", json={"instanceIds": ["0", "1"]})
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.ids() == []
    assert api.client.get(f"{VMSS}{V}").json()["sku"]["capacity"] == 0


def test_reimageall_gives_new_os_and_empty_data_disks(api: Api) -> None:
    before = api.client.get(f"{VMS}/0{V}").json()["properties"]["storageProfile"]
    r = api.client.post(f"{VMSS}/reimageall{V}", json={"instanceIds": ["0"]})
    _accepted(r)
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    after = api.client.get(f"{VMS}/0{V}").json()["properties"]["storageProfile"]
    assert after["osDisk"]["name"] != before["osDisk"]["name"]
    assert after["dataDisks"] == before["dataDisks"]  # same disks (lun, name), emptied
    assert api.world.driver.data_disks(api.sid, "0") == {0: ""}
    assert api.world.driver.data_disk_resets(api.sid, "0") == 1
    assert api.world.driver.data_disks(api.sid, "1") == {0: f"data:{api.sid}/1/lun0"}
    # A plain reimage afterwards keeps the data disks: the reset belonged to that run.
    r = api.client.post(f"{VMS}/1/reimage{V}")
    api.run()
    assert api.world.driver.data_disk_resets(api.sid, "1") == 0
    r = api.client.post(f"{VMS}/1/reimageall{V}")
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.world.driver.data_disk_resets(api.sid, "1") == 1


def test_a_reimage_starts_a_stopped_instance(api: Api) -> None:
    api.client.post(f"{VMS}/0/deallocate{V}")
    api.run()
    r = api.client.post(f"{VMS}/0/reimage{V}")
    api.run()
    assert api.status(r)["status"] == "Succeeded"
    assert api.power("0") == "PowerState/running"


def test_stopped_instances_count_against_the_upgrade_gate(api: Api) -> None:
    """Two of three stopped: over the 20 % unhealthy limit, a manual OS upgrade faults
    before touching anyone (as it would for instances down for any other reason)."""
    api.client.post(f"{VMSS}/poweroff{V}", json={"instanceIds": ["0", "1"]})
    api.run()
    api.world.publish("1.1.0")
    r = api.client.post(f"{VMSS}/osRollingUpgrade{V}")
    api.run()
    outcome = api.status(r)
    assert outcome["status"] == "Failed", outcome
    assert api.powers() == {"0": "PowerState/stopped", "1": "PowerState/stopped",
                            "2": "PowerState/running"}
    images = {vm["instanceId"]: vm["properties"]["storageProfile"]["imageReference"][
        "exactVersion"] for vm in api.client.get(f"{VMS}{V}").json()["value"]}
    assert images == {"0": "1.0.0", "1": "1.0.0", "2": "1.0.0"}


def test_a_power_verb_on_an_instance_being_upgraded_is_refused(api: Api) -> None:
    api.world.publish("1.1.0")
    r = api.client.post(f"{VMSS}/osRollingUpgrade{V}")
    assert r.status_code == 202
    api.world.reconciler.reconcile(api.sid)  # the first batch starts
    with api.world.store.transaction() as tx:
        run = tx.active_run(api.sid)
    assert run is not None
    busy = [i for i, ri in run.instances.items() if ri.step.value == "Upgrading"]
    assert busy
    refused = api.client.post(f"{VMS}/{busy[0]}/powerOff{V}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "OperationNotAllowed"
