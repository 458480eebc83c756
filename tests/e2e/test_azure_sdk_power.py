"""azure-mgmt-compute's power and instance verbs against a live ``scaleset serve`` with real
instances: begin_power_off, begin_start, begin_restart, begin_deallocate, begin_redeploy,
begin_reimage_all and begin_delete_instances, on the scale set and on one VM, each polled
by the SDK's own LRO poller to the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.mgmt.compute")
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from tests.e2e.server import Server, running_server

SUB = "00000000-0000-0000-0000-0000000000cc"
RG = "rg-power"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/Base/skus/1/versions")


class StaticCredential:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, driver="process") as s:
        yield s


def _powers(compute: ComputeManagementClient) -> dict[str, str]:
    out: dict[str, str] = {}
    for vm in compute.virtual_machine_scale_set_vms.list(RG, "web", expand="instanceView"):
        assert vm.instance_view is not None and vm.instance_view.statuses is not None
        (power,) = [s for s in vm.instance_view.statuses
                    if s.code and s.code.startswith("PowerState/")]
        assert power.display_status == "VM " + (power.code or "").split("/")[1]
        out[str(vm.instance_id)] = str(power.code)
    return out


def test_the_sdk_power_verbs_run_to_completion(server: Server) -> None:
    compute = ComputeManagementClient(StaticCredential(server.token), SUB,
                                      base_url=server.endpoint,
                                      connection_verify=str(server.ca), retry_total=0,
                                      polling_interval=0.2)
    with server.http() as http:  # a version without files: the base image, quick to boot
        r = http.put(f"{VERSIONS}/1.0.0?api-version=2026-04-01", json={"location": "westus"})
        assert r.status_code == 201, r.text
    vmss = m.VirtualMachineScaleSet(
        location="westus", sku=m.Sku(name="Standard_D2s_v3", capacity=3),
        upgrade_policy=m.UpgradePolicy(mode="Manual"),
        virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
            os_profile=m.VirtualMachineScaleSetOSProfile(computer_name_prefix="web",
                                                         admin_username="azureuser"),
            storage_profile=m.VirtualMachineScaleSetStorageProfile(
                image_reference=m.ImageReference(publisher="Contoso", offer="Base", sku="1",
                                                 version="latest"),
                data_disks=[m.VirtualMachineScaleSetDataDisk(lun=0, create_option="Empty",
                                                             disk_size_gb=1)])))
    scale_sets, vms = compute.virtual_machine_scale_sets, compute.virtual_machine_scale_set_vms
    scale_sets.begin_create_or_update(RG, "web", vmss).result()
    # The create ends when every instance has provisioned; a process still booting on a
    # loaded machine shows PowerState/starting for a moment after that.
    deadline = time.monotonic() + 30
    while set(_powers(compute).values()) != {"PowerState/running"}:
        assert time.monotonic() < deadline, _powers(compute)
        time.sleep(0.2)

    ids = m.VirtualMachineScaleSetVMInstanceIDs(instance_ids=["0", "1"])
    scale_sets.begin_power_off(RG, "web", ids, skip_shutdown=True).result()
    assert _powers(compute) == {"0": "PowerState/stopped", "1": "PowerState/stopped",
                                "2": "PowerState/running"}
    scale_sets.begin_start(RG, "web", ids).result()
    assert set(_powers(compute).values()) == {"PowerState/running"}
    scale_sets.begin_restart(RG, "web").result()
    assert set(_powers(compute).values()) == {"PowerState/running"}
    scale_sets.begin_deallocate(RG, "web").result()
    assert set(_powers(compute).values()) == {"PowerState/deallocated"}
    view = scale_sets.get_instance_view(RG, "web")
    assert view.virtual_machine is not None
    summary = {s.code: s.count for s in view.virtual_machine.statuses_summary or []}
    assert summary["PowerState/deallocated"] == 3
    scale_sets.begin_start(RG, "web").result()
    scale_sets.begin_redeploy(RG, "web", m.VirtualMachineScaleSetVMInstanceIDs(
        instance_ids=["2"])).result()
    scale_sets.begin_reimage_all(RG, "web", m.VirtualMachineScaleSetVMInstanceIDs(
        instance_ids=["1"])).result()
    assert set(_powers(compute).values()) == {"PowerState/running"}

    # The same verbs on one VM.
    vms.begin_power_off(RG, "web", "0").result()
    assert _powers(compute)["0"] == "PowerState/stopped"
    vms.begin_start(RG, "web", "0").result()
    vms.begin_restart(RG, "web", "0").result()
    vms.begin_deallocate(RG, "web", "0").result()
    assert _powers(compute)["0"] == "PowerState/deallocated"
    vms.begin_redeploy(RG, "web", "0").result()  # a redeploy starts it on a new host
    assert _powers(compute)["0"] == "PowerState/running"
    disk = vms.get(RG, "web", "1").storage_profile.os_disk.name  # type: ignore[union-attr]
    vms.begin_reimage_all(RG, "web", "1").result()
    assert vms.get(RG, "web", "1").storage_profile.os_disk.name != disk  # type: ignore[union-attr]

    # Unknown instances: Azure's 400, nothing changes.
    with pytest.raises(HttpResponseError) as refused:
        scale_sets.begin_power_off(RG, "web", m.VirtualMachineScaleSetVMInstanceIDs(
            instance_ids=["0", "42"])).result()
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "InvalidParameter"
    assert set(_powers(compute).values()) == {"PowerState/running"}

    scale_sets.begin_delete_instances(RG, "web", m.VirtualMachineScaleSetVMInstanceRequiredIDs(
        instance_ids=["2"]), force_deletion=True).result()
    assert sorted(_powers(compute)) == ["0", "1"]
    assert scale_sets.get(RG, "web").sku.capacity == 2  # type: ignore[union-attr]
    scale_sets.begin_delete_instances(RG, "web", m.VirtualMachineScaleSetVMInstanceRequiredIDs(
        instance_ids=["*"])).result()
    assert _powers(compute) == {}
