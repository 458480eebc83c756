"""Galleries through the official Azure SDK (Gallery api-version 2026-03-03), against a real
``scaleset serve`` whose simulated replication takes a fraction of a second."""

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
    scale_set_body,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sdk-gallery"),
                        extra=("--replication-delay", "0.3")) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> ComputeManagementClient:
    return compute_client(server)


def test_the_sdk_publishes_a_gallery_version_and_a_scale_set_uses_it(
        server: Server, client: ComputeManagementClient) -> None:
    gallery = client.galleries.begin_create_or_update(
        RG, "gal", m.Gallery(location="westus"), polling_interval=0.1).result()
    assert gallery.provisioning_state == "Succeeded"
    definition = client.gallery_images.begin_create_or_update(
        RG, "gal", "app", m.GalleryImage(
            location="westus", os_type="Linux", os_state="Generalized",
            identifier=m.GalleryImageIdentifier(publisher="Contoso", offer="App", sku="1")),
        polling_interval=0.1).result()
    assert definition.os_type == "Linux"

    version = client.gallery_image_versions.begin_create_or_update(
        RG, "gal", "app", "1.0.0", m.GalleryImageVersion(
            location="westus",
            publishing_profile=m.GalleryImageVersionPublishingProfile(target_regions=[
                m.TargetRegion(name="West US", regional_replica_count=1),
                m.TargetRegion(name="eastus", exclude_from_latest=True)])),
        polling_interval=0.1).result()
    assert version.provisioning_state == "Succeeded"
    assert version.publishing_profile.published_date is not None

    expanded = client.gallery_image_versions.get(RG, "gal", "app", "1.0.0",
                                                 expand="ReplicationStatus")
    assert expanded.replication_status.aggregated_state == "Completed"
    assert {(s.region, s.state, s.progress) for s in expanded.replication_status.summary} == {
        ("West US", "Completed", 100), ("eastus", "Completed", 100)}
    assert client.gallery_image_versions.get(RG, "gal", "app", "1.0.0").replication_status \
        is None

    # Read, modify, write: one more target region, replicated before the poller returns.
    version.publishing_profile.target_regions.append(m.TargetRegion(name="northeurope"))
    updated = client.gallery_image_versions.begin_create_or_update(
        RG, "gal", "app", "1.0.0", version, polling_interval=0.1).result()
    assert updated.provisioning_state == "Succeeded"
    assert updated.publishing_profile.published_date == \
        version.publishing_profile.published_date
    regions = client.gallery_image_versions.get(RG, "gal", "app", "1.0.0",
                                                expand="ReplicationStatus").replication_status
    assert {s.region: s.state for s in regions.summary} == {
        "West US": "Completed", "eastus": "Completed", "northeurope": "Completed"}
    assert [v.name for v in client.gallery_image_versions.list_by_gallery_image(
        RG, "gal", "app")] == ["1.0.0"]

    # A scale set on the gallery image's latest version.
    load_balancer(server)
    body = scale_set_body()
    body.virtual_machine_profile.storage_profile.image_reference = m.ImageReference(
        id=definition.id)
    vmss = client.virtual_machine_scale_sets.begin_create_or_update(
        RG, "onGallery", body, polling_interval=0.2).result()
    assert vmss.virtual_machine_profile.storage_profile.image_reference.exact_version == "1.0.0"

    with pytest.raises(HttpResponseError) as refused:
        client.galleries.begin_delete(RG, "gal").result()
    assert refused.value.error is not None
    assert refused.value.error.code == "CannotDeleteResource"

    client.virtual_machine_scale_sets.begin_delete(RG, "onGallery",
                                                   polling_interval=0.2).result()
    client.gallery_image_versions.begin_delete(RG, "gal", "app", "1.0.0").result()
    client.gallery_images.begin_delete(RG, "gal", "app").result()
    client.galleries.begin_delete(RG, "gal").result()
    with pytest.raises(ResourceNotFoundError):
        client.galleries.get(RG, "gal")
