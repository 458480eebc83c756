"""The Azure SDK approves a deferred automatic OS upgrade on a real ``scaleset serve``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

azure_compute = pytest.importorskip("azure.mgmt.compute")
from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.mgmt.compute import ComputeManagementClient  # noqa: E402
from azure.mgmt.compute import models as m  # noqa: E402

from tests.e2e.server import Server, running_server  # noqa: E402
from tests.e2e.test_azure_sdk import (  # noqa: E402
    RG,
    compute_client,
    load_balancer,
    publish,
    scale_set_body,
    wait_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sdk-trigger")) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> ComputeManagementClient:
    return compute_client(server)


def test_the_sdk_approves_a_deferred_os_upgrade(server: Server,
                                                client: ComputeManagementClient) -> None:
    publish(server, "1.0.0")
    load_balancer(server)
    body = scale_set_body()
    body.upgrade_policy.automatic_os_upgrade_policy.os_rolling_upgrade_deferral = True
    vmss = client.virtual_machine_scale_sets
    vmss.begin_create_or_update(RG, "deferred", body, polling_interval=0.2).result()

    with pytest.raises(HttpResponseError) as nothing:
        vmss.begin_approve_rolling_upgrade(RG, "deferred").result()
    assert nothing.value.status_code == 409
    assert nothing.value.error is not None and nothing.value.error.code == "OperationNotAllowed"

    def all_healthy() -> bool:  # an unhealthy fleet would stop the run at its first gate
        vms = list(client.virtual_machine_scale_set_vms.list(RG, "deferred",
                                                             expand="instanceView"))
        return len(vms) == 3 and all(
            v.instance_view.vm_health.status.code == "HealthState/healthy" for v in vms)
    wait_for(all_healthy, timeout=30)
    publish(server, "1.1.0")

    def awaiting_approval() -> bool:
        view = vmss.get_instance_view(RG, "deferred")
        return any(s.code == "OSUpgrade/AwaitingApproval" for s in view.statuses or [])
    wait_for(awaiting_approval, timeout=30)
    assert [h.properties.started_by for h in vmss.get_os_upgrade_history(RG, "deferred")] == []

    vmss.begin_approve_rolling_upgrade(
        RG, "deferred", m.VirtualMachineScaleSetVMInstanceIDs(instance_ids=["0", "1", "2"]),
        polling_interval=0.2).result()  # the operation ends with the run
    [run] = list(vmss.get_os_upgrade_history(RG, "deferred"))
    assert run.properties.started_by == "Platform"
    assert run.properties.running_status.code == "Completed"
    assert run.properties.target_image_reference.version == "1.1.0"
    assert not awaiting_approval()
