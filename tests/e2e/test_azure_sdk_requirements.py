"""The Azure SDK sees a refused requirement of automatic OS upgrade as Azure's error code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

azure_compute = pytest.importorskip("azure.mgmt.compute")
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402
from azure.mgmt.compute import ComputeManagementClient  # noqa: E402
from azure.mgmt.compute import models as m  # noqa: E402

from tests.e2e.server import Server, running_server  # noqa: E402
from tests.e2e.test_azure_sdk import (  # noqa: E402
    RG,
    compute_client,
    load_balancer,
    publish,
    scale_set_body,
)

IMAGE_REF = "properties.virtualMachineProfile.storageProfile.imageReference"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sdk-requirements")) as s:
        publish(s, "1.0.0")
        load_balancer(s)
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> ComputeManagementClient:
    return compute_client(server)


def test_a_pinned_version_is_refused_with_invalid_parameter(
        client: ComputeManagementClient) -> None:
    body = scale_set_body()
    body.virtual_machine_profile.storage_profile.image_reference.version = "1.0.0"
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, "pinned", body)
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "InvalidParameter"
    assert caught.value.error.target == f"{IMAGE_REF}.version"
    assert "version set to 'latest'" in (caught.value.error.message or "")
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_scale_sets.get(RG, "pinned")


def test_a_scale_set_without_a_health_signal_is_refused_with_bad_request(
        client: ComputeManagementClient) -> None:
    body = scale_set_body()
    body.virtual_machine_profile.network_profile = None
    body.upgrade_policy.mode = "Automatic"  # Rolling would be refused first, for its own rule
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, "blind", body)
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "BadRequest"
    assert "health probe or health extension was not specified" in str(caught.value)
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_scale_sets.get(RG, "blind")


def test_an_update_that_pins_the_version_is_refused_and_changes_nothing(
        client: ComputeManagementClient) -> None:
    client.virtual_machine_scale_sets.begin_create_or_update(
        RG, "kept", scale_set_body(), polling_interval=0.2).result()
    update = m.VirtualMachineScaleSetUpdate(
        virtual_machine_profile=m.VirtualMachineScaleSetUpdateVMProfile(
            storage_profile=m.VirtualMachineScaleSetUpdateStorageProfile(
                image_reference=m.ImageReference(version="1.0.0"))))
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_machine_scale_sets.begin_update(RG, "kept", update)
    assert caught.value.error is not None and caught.value.error.code == "InvalidParameter"
    got = client.virtual_machine_scale_sets.get(RG, "kept")
    assert got.virtual_machine_profile.storage_profile.image_reference.version == "latest"
    client.virtual_machine_scale_sets.begin_delete(RG, "kept", polling_interval=0.2).result()
