"""The official Azure SDK for Python, unmodified, against a real ``scaleset serve`` over HTTPS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

azure_compute = pytest.importorskip("azure.mgmt.compute")
from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402
from azure.mgmt.compute import ComputeManagementClient  # noqa: E402
from azure.mgmt.compute import models as m  # noqa: E402

from tests.e2e.server import Server, running_server  # noqa: E402
from tests.e2e.story import assert_only_changed  # noqa: E402

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-sdk"
IMAGE_PATH = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
              "Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")


class StaticCredential:
    """A TokenCredential that hands out the server's bearer token (no azure-identity needed)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sdk")) as s:
        yield s


def compute_client(server: Server) -> ComputeManagementClient:
    """The official SDK's client for ``server``: its token, its CA, no retries."""
    return ComputeManagementClient(StaticCredential(server.token), SUB, base_url=server.endpoint,
                                   connection_verify=str(server.ca), retry_total=0)


@pytest.fixture(scope="module")
def client(server: Server) -> ComputeManagementClient:
    return compute_client(server)


def publish(server: Server, version: str, **properties: Any) -> None:
    with server.http() as http:
        r = http.put(f"{IMAGE_PATH}/{version}?api-version=2026-04-01",
                     json={"location": "westus", "properties": {
                         "osDiskImage": {"operatingSystem": "Linux"}, **properties}})
        assert r.status_code in (200, 201), r.text


def load_balancer(server: Server) -> None:
    """The load balancer and probe the scale sets name (azure-mgmt-network is not needed)."""
    with server.http() as http:
        r = http.put(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
                     "loadBalancers/lb?api-version=2024-05-01",
                     json={"location": "westus", "properties": {"probes": [
                         {"name": "http", "properties": {"protocol": "Http", "port": 80,
                                                         "requestPath": "/health"}}]}})
        assert r.status_code in (200, 201), r.text


def wait_for(predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def scale_set_body() -> m.VirtualMachineScaleSet:
    return m.VirtualMachineScaleSet(
        location="westus",
        sku=m.Sku(name="Standard_D2s_v3", tier="Standard", capacity=3),
        upgrade_policy=m.UpgradePolicy(
            mode="Rolling",
            rolling_upgrade_policy=m.RollingUpgradePolicy(
                max_batch_instance_percent=20, max_unhealthy_instance_percent=20,
                max_unhealthy_upgraded_instance_percent=20, pause_time_between_batches="PT0S"),
            automatic_os_upgrade_policy=m.AutomaticOSUpgradePolicy(
                enable_automatic_os_upgrade=True, disable_automatic_rollback=False)),
        virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
            os_profile=m.VirtualMachineScaleSetOSProfile(
                computer_name_prefix="vm", admin_username="azureuser",
                admin_password="Never-Echo-1"),
            storage_profile=m.VirtualMachineScaleSetStorageProfile(
                image_reference=m.ImageReference(publisher="Canonical", offer="UbuntuServer",
                                                 sku="18.04-LTS", version="latest"),
                os_disk=m.VirtualMachineScaleSetOSDisk(create_option="FromImage"),
                data_disks=[m.VirtualMachineScaleSetDataDisk(lun=0, create_option="Empty",
                                                             disk_size_gb=8)]),
            network_profile=m.VirtualMachineScaleSetNetworkProfile(
                health_probe=m.ApiEntityReference(
                    id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                       "Microsoft.Network/loadBalancers/lb/probes/http"))),
    )


def test_the_sdk_drives_a_scale_set_through_its_life(server: Server,
                                                     client: ComputeManagementClient) -> None:
    publish(server, "1.0.0")
    load_balancer(server)
    vmss = client.virtual_machine_scale_sets.begin_create_or_update(
        RG, "vmss1", scale_set_body(), polling_interval=0.2).result()
    assert vmss.name == "vmss1"
    assert vmss.virtual_machine_profile.storage_profile.image_reference.exact_version == "1.0.0"
    assert vmss.virtual_machine_profile.os_profile.admin_password is None

    assert [s.name for s in client.virtual_machine_scale_sets.list(RG)] == ["vmss1"]
    assert "vmss1" in [s.name for s in client.virtual_machine_scale_sets.list_all()]
    got = client.virtual_machine_scale_sets.get(RG, "vmss1")
    assert got.sku.capacity == 3

    client.virtual_machine_scale_sets.begin_update(
        RG, "vmss1", m.VirtualMachineScaleSetUpdate(sku=m.Sku(capacity=4)),
        polling_interval=0.2).result()
    def all_four_healthy() -> Any:
        vms = list(client.virtual_machine_scale_set_vms.list(RG, "vmss1", expand="instanceView"))
        healthy = [v for v in vms
                   if v.instance_view.vm_health.status.code == "HealthState/healthy"]
        return vms if len(healthy) == 4 else None

    # The new instance must be up first: an unhealthy quarter would stop the run at its gate.
    vms = wait_for(all_four_healthy)
    assert sorted(v.instance_id for v in vms) == ["0", "1", "2", "3"]
    assert all(v.instance_view is not None for v in vms)

    # A newer platform image: the Platform run starts by itself and completes.
    publish(server, "1.1.0")

    def platform_run_done() -> Any:
        try:
            latest = client.virtual_machine_scale_set_rolling_upgrades.get_latest(RG, "vmss1")
        except ResourceNotFoundError:
            return None
        return latest if latest.running_status.code == "Completed" else None

    latest = wait_for(platform_run_done)
    assert latest.progress.successful_instance_count == 4
    history = list(client.virtual_machine_scale_sets.get_os_upgrade_history(RG, "vmss1"))
    assert history[0].properties.started_by == "Platform"
    assert history[0].properties.target_image_reference.version == "1.1.0"
    vm = client.virtual_machine_scale_set_vms.get(RG, "vmss1", "0", expand="instanceView")
    assert vm.storage_profile.image_reference.exact_version == "1.1.0"

    # A manual upgrade, cancelled while it runs.
    client.virtual_machine_scale_sets.begin_update(RG, "vmss1", m.VirtualMachineScaleSetUpdate(
        upgrade_policy=m.UpgradePolicy(automatic_os_upgrade_policy=m.AutomaticOSUpgradePolicy(
            enable_automatic_os_upgrade=False))), polling_interval=0.2).result()
    publish(server, "1.2.0")
    client.virtual_machine_scale_set_rolling_upgrades.begin_start_os_upgrade(
        RG, "vmss1", polling=False)
    client.virtual_machine_scale_set_rolling_upgrades.begin_cancel(
        RG, "vmss1", polling_interval=0.2).result()
    latest = client.virtual_machine_scale_set_rolling_upgrades.get_latest(RG, "vmss1")
    assert latest.running_status.code == "Cancelled"
    history = list(client.virtual_machine_scale_sets.get_os_upgrade_history(RG, "vmss1"))
    assert history[0].properties.started_by == "User"

    # Reimage one instance; protect another.
    client.virtual_machine_scale_set_vms.begin_reimage(
        RG, "vmss1", "2", vm_scale_set_vm_reimage_input=m.VirtualMachineScaleSetVMReimageParameters(
            temp_disk=False), polling_interval=0.2).result()
    protected = client.virtual_machine_scale_set_vms.begin_update(
        RG, "vmss1", "1", m.VirtualMachineScaleSetVM(
            location="westus", protection_policy=m.VirtualMachineScaleSetVMProtectionPolicy(
                protect_from_scale_in=True, protect_from_scale_set_actions=True)),
        polling_interval=0.2).result()
    assert protected.protection_policy.protect_from_scale_set_actions is True

    # Errors come back as the SDK's own exceptions with ARM codes.
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_set_rolling_upgrades.begin_cancel(
            RG, "vmss1", polling_interval=0.2).result()
    assert err.value.error is not None and err.value.error.code == "OperationNotAllowed"

    client.virtual_machine_scale_sets.begin_delete(RG, "vmss1", polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_scale_sets.get(RG, "vmss1")


def test_versions_list_through_the_sdk(server: Server, client: ComputeManagementClient) -> None:
    publish(server, "1.9.0")
    publish(server, "1.10.0")
    names = [i.name for i in client.virtual_machine_images.list(
        "westus", "Canonical", "UbuntuServer", "18.04-LTS", top=2, orderby="name desc")]
    assert names == ["1.10.0", "1.9.0"]
    image = client.virtual_machine_images.get("westus", "Canonical", "UbuntuServer",
                                              "18.04-LTS", "1.10.0")
    assert image.name == "1.10.0"


def test_instance_operations_through_the_sdk(server: Server,
                                             client: ComputeManagementClient) -> None:
    publish(server, "1.0.0")
    load_balancer(server)
    body = scale_set_body()
    body.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade = False
    body.sku.capacity = 2
    client.virtual_machine_scale_sets.begin_create_or_update(
        RG, "vmss2", body, polling_interval=0.2).result()
    view = client.virtual_machine_scale_sets.get_instance_view(RG, "vmss2")
    assert view.virtual_machine.statuses_summary[0].count == 2
    vm_view = client.virtual_machine_scale_set_vms.get_instance_view(RG, "vmss2", "0")
    assert vm_view.platform_update_domain == 0
    assert any(s.code == "PowerState/running" for s in vm_view.statuses)

    client.virtual_machine_scale_sets.begin_reimage(
        RG, "vmss2", vm_scale_set_reimage_input=m.VirtualMachineScaleSetReimageParameters(
            instance_ids=["1"]), polling_interval=0.2).result()
    client.virtual_machine_scale_sets.begin_update_instances(
        RG, "vmss2", m.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=["0"]),
        polling_interval=0.2).result()
    client.virtual_machine_scale_set_vms.begin_delete(RG, "vmss2", "1",
                                                      polling_interval=0.2).result()
    assert [v.instance_id for v in client.virtual_machine_scale_set_vms.list(RG, "vmss2")] \
        == ["0"]
    assert client.virtual_machine_scale_sets.get(RG, "vmss2").sku.capacity == 1
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_scale_set_vms.get(RG, "vmss2", "1")
    client.virtual_machine_scale_sets.begin_delete(RG, "vmss2", polling_interval=0.2).result()


def raw(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """``cls=`` for an SDK call: the body as the server sent it, not the SDK's model."""
    return pipeline_response.http_response.json()


def test_a_read_modify_write_through_the_sdk_changes_only_what_it_changed(
        server: Server, client: ComputeManagementClient) -> None:
    """get, change two fields, begin_create_or_update with the model get returned (issue 11
    item 1). The SDK's PUT is the whole model without its read-only fields (exactVersion,
    provisioningState, ...) and without the admin password GET never returns; the scale set
    keeps its image, probe, data disks and policy, and only the two fields change."""
    publish(server, "1.0.0")
    load_balancer(server)
    body = scale_set_body()
    body.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade = False
    body.sku.capacity = 1
    scale_sets = client.virtual_machine_scale_sets
    scale_sets.begin_create_or_update(RG, "vmss3", body, polling_interval=0.2).result()
    before = scale_sets.get(RG, "vmss3", cls=raw)
    model = scale_sets.get(RG, "vmss3")
    assert model.virtual_machine_profile.os_profile.admin_password is None
    model.sku.capacity = 2
    model.tags = {"team": "web"}
    scale_sets.begin_create_or_update(RG, "vmss3", model, polling_interval=0.2).result()
    after = scale_sets.get(RG, "vmss3", cls=raw)
    assert_only_changed("read-modify-write", before, after,
                        {"sku.capacity": 2, "tags": {"team": "web"}})
    assert sorted(v.instance_id for v in client.virtual_machine_scale_set_vms.list(
        RG, "vmss3")) == ["0", "1"]
    scale_sets.begin_delete(RG, "vmss3", polling_interval=0.2).result()
