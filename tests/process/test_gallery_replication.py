"""Gallery image versions replicated for real: artifacts copied into each region's store,
checked, and booted by real instances."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.artifacts import ArtifactStore, digest_tree
from scaleset.clock import SystemClock
from scaleset.reconcile.replication import Replicator
from scaleset.reconcile.settings import ShellSettings, SourcePolicy
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from tests.process.fleet import PROBE_ID, SUB, VMSS, WEBAPP, Fleet, wait_for

G = {"api-version": "2026-03-03"}
GALLERY = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/galleries/gal"
DEFINITION = f"{GALLERY}/images/webapp"


def gallery(client: TestClient) -> None:
    assert client.put(GALLERY, params=G, json={"location": "westus"}).status_code == 201
    r = client.put(DEFINITION, params=G, json={"location": "westus", "properties": {
        "osType": "Linux", "identifier": {"publisher": "Contoso", "offer": "WebApp",
                                          "sku": "1"}}})
    assert r.status_code == 201, r.text


def publish(client: TestClient, version: str, source: Path, regions: list[str]) -> Any:
    r = client.put(f"{DEFINITION}/versions/{version}", params=G, json={
        "location": "westus", "properties": {
            "publishingProfile": {"targetRegions": [{"name": n} for n in regions]},
            "storageProfile": {"source": {"path": str(source)}}}})
    assert r.status_code in (200, 201), r.text
    return r


def status(client: TestClient, version: str) -> dict[str, Any]:
    body = client.get(f"{DEFINITION}/versions/{version}",
                      params={**G, "$expand": "ReplicationStatus"}).json()
    result: dict[str, Any] = body["properties"]["replicationStatus"]
    return result


class Local:
    """The API and a replicator over an artifact store, without instances."""

    def __init__(self, tmp: Path) -> None:
        engine = make_engine(f"sqlite:///{tmp}/scaleset.db")
        migrate(engine)
        self.store = Store(engine)
        self.artifacts = ArtifactStore(tmp / "images")
        self.rung = 0
        # Sources: the examples and the test's own directory (the store inside it is
        # still never read: the API refuses the data directory whatever the roots).
        context = ApiContext(store=self.store, clock=SystemClock(), auth_required=False,
                             artifacts=self.artifacts, settings=ShellSettings(
                                 sources=SourcePolicy(roots=(WEBAPP.parent, tmp))))
        self.client = TestClient(create_app(context), base_url="https://testserver")
        self.replicator = self.restart()

    def restart(self) -> Replicator:
        self.replicator = Replicator(store=self.store, clock=SystemClock(),
                                     artifacts=self.artifacts, notify=self._ring)
        return self.replicator

    def _ring(self, _: str | None) -> None:
        self.rung += 1

    def replicate(self) -> None:
        self.replicator.replicate_pending(SystemClock().now())
        assert self.replicator.drain(timeout=60)

    def close(self) -> None:
        self.replicator.close()
        self.client.close()
        self.store.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    world = Local(tmp_path)
    gallery(world.client)
    try:
        yield world
    finally:
        world.close()


def test_each_target_region_gets_a_verified_copy_of_the_artifact(local: Local) -> None:
    r = publish(local.client, "1.0.0", WEBAPP / "1.0.0", ["westus", "East US 2"])
    digest = r.json()["properties"]["artifact"]["digest"]
    assert status(local.client, "1.0.0")["aggregatedState"] == "InProgress"
    operation = r.headers["Azure-AsyncOperation"]

    local.replicate()
    assert status(local.client, "1.0.0") == {"aggregatedState": "Completed", "summary": [
        {"region": "westus", "state": "Completed", "details": "", "progress": 100},
        {"region": "East US 2", "state": "Completed", "details": "", "progress": 100}]}
    for region in ("westus", "eastus2"):
        copy = local.artifacts.root / "regions" / region / "sha256" / digest.split(":")[1]
        assert copy.is_dir() and digest_tree(copy) == digest  # the copy itself checks out
        assert (copy / "app.py").read_bytes() == (WEBAPP / "1.0.0" / "app.py").read_bytes()
    assert local.client.get(operation).json()["status"] == "Succeeded"
    assert local.rung >= 1  # the reconcile loop's doorbell


def test_a_copy_that_fails_leaves_the_region_failed_with_the_reason(local: Local,
                                                                    tmp_path: Path) -> None:
    image = tmp_path / "broken"
    shutil.copytree(WEBAPP / "1.0.0", image)
    r = publish(local.client, "1.0.0", image, ["westus", "eastus"])
    digest = r.json()["properties"]["artifact"]["digest"]
    shutil.rmtree(local.artifacts.path(digest))  # the stored artifact is lost
    local.replicate()
    found = status(local.client, "1.0.0")
    assert found["aggregatedState"] == "Failed"
    assert all(s["state"] == "Failed" and digest in s["details"] for s in found["summary"])
    version = local.client.get(f"{DEFINITION}/versions/1.0.0", params=G).json()
    assert version["properties"]["provisioningState"] == "Failed"
    op = local.client.get(r.headers["Azure-AsyncOperation"]).json()
    assert (op["status"], op["error"]["code"]) == ("Failed", "ReplicationFailed")

    local.artifacts.ingest(image)  # put back, then PUT again: the failed regions retry
    publish(local.client, "1.0.0", image, ["westus", "eastus"])
    local.replicate()
    assert status(local.client, "1.0.0")["aggregatedState"] == "Completed"


def test_a_restarted_replicator_copies_what_was_pending(local: Local) -> None:
    r = publish(local.client, "1.0.0", WEBAPP / "1.0.0", ["westus", "eastus"])
    digest = r.json()["properties"]["artifact"]["digest"]
    # The server stopped before its copies ran, one of them cut short mid-way.
    leftover = local.artifacts.root / "regions" / "eastus" / ".tmp" / "ingest-cut"
    leftover.mkdir(parents=True)
    local.replicator.close()
    local.restart()
    assert not leftover.exists()
    local.replicate()
    assert status(local.client, "1.0.0")["aggregatedState"] == "Completed"
    assert digest in ArtifactStore(local.artifacts.root / "regions" / "eastus")


def gallery_scale_set(fleet: Fleet, name: str, capacity: int) -> Any:
    return fleet.call("PUT", f"{VMSS}/{name}", {
        "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "properties": {"upgradePolicy": {
            "mode": "Rolling",
            "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
            "rollingUpgradePolicy": {"maxBatchInstancePercent": 50,
                                     "maxUnhealthyInstancePercent": 100,
                                     "maxUnhealthyUpgradedInstancePercent": 50}},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": name, "adminUsername": "azureuser"},
                "storageProfile": {"imageReference": {"id": DEFINITION}},
                "networkProfile": {"healthProbe": {"id": PROBE_ID}}}}})


def test_real_instances_boot_and_upgrade_to_replicated_gallery_versions(fleet: Fleet) -> None:
    replicator = Replicator(store=fleet.store, clock=SystemClock(), artifacts=fleet.artifacts,
                            notify=lambda _: fleet._wake())
    try:
        gallery(fleet.client)
        fleet.create_load_balancer()
        publish(fleet.client, "1.0.0", WEBAPP / "1.0.0", [])
        replicator.replicate_pending(SystemClock().now())
        assert replicator.drain(timeout=60)
        gallery_scale_set(fleet, "web", 2)
        wait_for(lambda: fleet.all_healthy("web", 2), what="instances on 1.0.0")
        first = fleet.instances("web")[0]
        assert "webapp 1.0.0" in fleet.page(first)

        publish(fleet.client, "1.1.0", WEBAPP / "1.1.0", ["westus"])
        replicator.replicate_pending(SystemClock().now())
        assert replicator.drain(timeout=60)
        wait_for(lambda: fleet.latest_status("web") == "Completed", timeout=90,
                 what="the Platform run to the gallery's 1.1.0")
        latest = fleet.latest("web")
        assert latest["properties"]["runningStatus"]["code"] == "Completed"
        for instance in fleet.instances("web"):
            assert fleet.exact_version(instance) == "1.1.0"
            assert "webapp 1.1.0" in fleet.page(instance)
    finally:
        replicator.close()
