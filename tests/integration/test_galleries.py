"""Galleries through the ARM routes, on the virtual clock, with simulated replication.

Replication without an artifact store takes ``DELAY`` of (virtual) time per
region; the test moves the clock and runs the replicator's round itself, as
the reconcile loop would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.errors import OperationNotAllowed
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import commands
from scaleset.reconcile.replication import Replicator
from scaleset.store.repository import Store
from scaleset.upgrade.state import StartedBy
from tests.support import World, scale_set_id, scale_set_model

SUB = "00000000-0000-0000-0000-000000000001"
G = "?api-version=2026-03-03"
PROVIDER = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Compute"
GALLERY = f"{PROVIDER}/galleries/gal1"
DEFINITION = f"{GALLERY}/images/app"
DELAY = timedelta(seconds=2)
BOTH = ["East US", "westus"]  # the gallery's region (its source) and the scale sets'


class Galleries:
    def __init__(self, world: World, client: TestClient, replicator: Replicator) -> None:
        self.world = world
        self.client = client
        self.replicator = replicator

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.put(path + G, json=body)

    def get(self, path: str, query: str = "") -> Any:
        return self.client.get(path + G + query)

    def publish(self, version: str, regions: list[str] | None = None, *,
                expect: int = 201, **profile: Any) -> dict[str, Any]:
        if regions is not None:
            profile["targetRegions"] = [r if isinstance(r, dict) else {"name": r}
                                        for r in regions]
        r = self.put(f"{DEFINITION}/versions/{version}",
                     {"location": "East US", "properties": {"publishingProfile": profile}})
        assert r.status_code == expect, r.text
        body: dict[str, Any] = r.json()
        return body

    def replicate(self, after: timedelta = DELAY) -> None:
        """Let ``after`` pass, then run the replicator's round."""
        self.world.clock.advance(after)
        self.replicator.replicate_pending(self.world.clock.now())

    def scale_set(self, name: str = "vmss1", image_id: str = DEFINITION,
                  **kwargs: Any) -> str:
        data = scale_set_model(name, **kwargs).model_dump(mode="json", by_alias=True,
                                                         exclude_unset=True)
        data["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] = {
            "id": image_id}
        sid = scale_set_id(name)
        commands.create_scale_set(self.world.store, scale_set_id=sid,
                                  model=ScaleSet.model_validate(data),
                                  now=self.world.clock.now())
        for _ in range(3):  # its instances boot and turn healthy
            self.world.reconciler.reconcile(sid)
            self.world.clock.advance(self.world.driver.timings.per_upgrade)
        return sid

    def image_version(self, sid: str) -> str | None:
        with self.world.store.transaction() as tx:
            row = tx.get_scale_set(sid)
        assert row is not None
        return row.image_version


@pytest.fixture
def api(store: Store) -> Iterator[Galleries]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=2)
    replicator = Replicator(store=store, clock=world.clock, artifacts=None, delay=DELAY)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        api = Galleries(world, client, replicator)
        assert api.put(GALLERY, {"location": "East US"}).status_code == 201
        r = api.put(DEFINITION, {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "Contoso", "offer": "App", "sku": "1"}}})
        assert r.status_code == 201, r.text
        yield api


def active_run(api: Galleries, sid: str) -> Any:
    with api.world.store.transaction() as tx:
        return tx.active_run(sid)


def test_a_version_not_yet_replicated_to_the_scale_sets_region_starts_no_run(
        api: Galleries) -> None:
    api.publish("1.0.0", BOTH)
    api.replicate()
    sid = api.scale_set()
    assert api.image_version(sid) == "1.0.0"

    api.publish("1.1.0", ["East US"])  # published, but only in the gallery's region
    api.replicate()
    for _ in range(3):
        api.world.reconciler.reconcile(sid)
    assert active_run(api, sid) is None

    updated = api.publish("1.1.0", BOTH, expect=200)  # now westus too: replicating there
    assert updated["properties"]["provisioningState"] == "Updating"
    api.world.reconciler.reconcile(sid)
    assert active_run(api, sid) is None

    api.replicate()
    api.world.reconciler.reconcile(sid)
    run = active_run(api, sid)
    assert run is not None and run.started_by is StartedBy.PLATFORM
    assert run.target.image_version == "1.1.0"
    api.world.settle(sid)
    assert api.image_version(sid) == "1.1.0"
    history = api.client.get(f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft."
                             "Compute/virtualMachineScaleSets/vmss1/osUpgradeHistory"
                             "?api-version=2026-04-01").json()["value"]
    assert history[0]["properties"]["targetImageReference"] == {
        "id": f"{DEFINITION}/versions/1.1.0"}


def test_versions_excluded_from_latest_are_never_rolled_out_nor_chosen(api: Galleries) -> None:
    api.publish("1.0.0", BOTH)
    api.replicate()
    sid = api.scale_set()
    api.publish("2.0.0", BOTH, excludeFromLatest=True)
    api.publish("3.0.0", ["East US", {"name": "West US", "excludeFromLatest": True}])
    api.replicate()
    api.world.settle(sid)
    for _ in range(3):
        api.world.reconciler.reconcile(sid)
    assert active_run(api, sid) is None
    assert api.image_version(sid) == "1.0.0"
    assert api.image_version(api.scale_set("fresh")) == "1.0.0"  # nor "latest" at create

    api.publish("1.5.0", BOTH)
    api.replicate()
    api.world.reconciler.reconcile(sid)
    assert active_run(api, sid).target.image_version == "1.5.0"


def test_latest_skips_versions_past_their_end_of_life_and_orders_numerically(
        api: Galleries) -> None:
    api.publish("1.9.0", BOTH)
    api.publish("1.10.0", BOTH)
    api.publish("1.11.0", BOTH, endOfLifeDate="2025-12-31T00:00:00Z")  # before EPOCH
    api.replicate()
    assert api.image_version(api.scale_set()) == "1.10.0"
    listed = api.get(f"{DEFINITION}/versions").json()
    names = [v["name"] for v in listed["value"]]
    names += [v["name"] for v in api.client.get(listed["nextLink"]).json()["value"]]
    assert names == ["1.9.0", "1.10.0", "1.11.0"]


def test_replication_status_is_shown_only_when_expanded(api: Galleries) -> None:
    created = api.publish("1.0.0", BOTH)
    assert created["properties"]["provisioningState"] == "Creating"
    assert created["properties"]["publishingProfile"]["publishedDate"]
    plain = api.get(f"{DEFINITION}/versions/1.0.0").json()
    assert "replicationStatus" not in plain["properties"]

    api.replicate(DELAY / 2)
    status = api.get(f"{DEFINITION}/versions/1.0.0",
                     "&$expand=ReplicationStatus").json()["properties"]["replicationStatus"]
    assert status["aggregatedState"] == "InProgress"
    assert [(s["region"], s["state"]) for s in status["summary"]] == [
        ("East US", "Replicating"), ("westus", "Replicating")]
    assert all(0 < s["progress"] < 100 for s in status["summary"])

    api.replicate(DELAY / 2)
    done = api.get(f"{DEFINITION}/versions/1.0.0", "&$expand=replicationstatus").json()
    assert done["properties"]["provisioningState"] == "Succeeded"
    assert done["properties"]["replicationStatus"] == {"aggregatedState": "Completed", "summary": [
        {"region": "East US", "state": "Completed", "details": "", "progress": 100},
        {"region": "westus", "state": "Completed", "details": "", "progress": 100}]}
    bad = api.get(f"{DEFINITION}/versions/1.0.0", "&$expand=everything")
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "$expand"


def test_the_put_is_an_operation_that_ends_when_replication_has(api: Galleries) -> None:
    r = api.put(f"{DEFINITION}/versions/1.0.0", {"location": "eastus"})
    assert r.status_code == 201
    assert r.headers["Retry-After"] == "1"
    operation = r.headers["Azure-AsyncOperation"]
    assert "api-version=2026-03-03" in operation
    assert api.client.get(operation).json()["status"] == "InProgress"
    # No target regions: the version replicates to its own (the gallery's) region only.
    assert [t["name"] for t in r.json()["properties"]["publishingProfile"][
        "targetRegions"]] == ["eastus"]
    api.replicate()
    assert api.client.get(operation).json()["status"] == "Succeeded"


def test_deletes_are_refused_while_something_depends_on_the_resource(api: Galleries) -> None:
    api.publish("1.0.0", BOTH)
    api.replicate()
    api.scale_set(image_id=f"{DEFINITION}/versions/1.0.0", automatic=False)

    gallery = api.client.delete(GALLERY + G)
    assert gallery.status_code == 409
    assert gallery.json()["error"]["code"] == "CannotDeleteResource"
    assert "'app'" in gallery.json()["error"]["message"]
    definition = api.client.delete(DEFINITION + G)
    assert definition.status_code == 409 and "1.0.0" in definition.json()["error"]["message"]
    pinned = api.client.delete(f"{DEFINITION}/versions/1.0.0{G}")
    assert pinned.status_code == 409 and "'vmss1'" in pinned.json()["error"]["message"]

    commands.delete_scale_set(api.world.store, scale_set_id=scale_set_id("vmss1"),
                              now=api.world.clock.now())
    api.world.reconciler.reconcile(scale_set_id("vmss1"))
    api.world.clock.advance(timedelta(minutes=1))
    api.world.reconciler.reconcile(scale_set_id("vmss1"))
    for path in (f"{DEFINITION}/versions/1.0.0", DEFINITION, GALLERY):
        assert api.client.delete(path + G).status_code == 200, path
        assert api.client.delete(path + G).status_code == 204, path
    assert api.get(GALLERY).status_code == 404


def test_a_definitions_os_type_and_identifier_never_change(api: Galleries) -> None:
    base = {"osType": "Linux", "identifier": {"publisher": "Contoso", "offer": "App",
                                              "sku": "1"}}
    for change, field in (({"osType": "Windows"}, "properties.osType"),
                          ({"identifier": {"publisher": "X", "offer": "App", "sku": "1"}},
                           "properties.identifier")):
        r = api.put(DEFINITION, {"location": "eastus", "properties": {**base, **change}})
        assert r.status_code == 409, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["target"]) == (
            "PropertyChangeNotAllowed", field)
    tagged = api.put(DEFINITION, {"location": "eastus", "tags": {"team": "web"},
                                  "properties": base})
    assert tagged.status_code == 200 and tagged.json()["tags"] == {"team": "web"}


def test_a_published_versions_files_never_change_but_its_profile_may(api: Galleries) -> None:
    path = f"{DEFINITION}/versions/1.0.0"
    first = api.put(path, {"location": "eastus", "properties": {
        "storageProfile": {"source": {"path": "/images/app-1"}}}})
    assert first.status_code == 201
    changed = api.put(path, {"location": "eastus", "properties": {
        "storageProfile": {"source": {"path": "/images/app-2"}}}})
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "Conflict"
    again = api.put(path, first.json() | {"properties": {
        **first.json()["properties"],
        "publishingProfile": {"targetRegions": [{"name": "eastus"}, {"name": "westus"}],
                              "endOfLifeDate": "2030-01-01T00:00:00Z"}}})
    assert again.status_code == 200, again.text
    props = again.json()["properties"]
    assert props["storageProfile"]["source"] == {"path": "/images/app-1"}
    assert props["publishingProfile"]["endOfLifeDate"] == "2030-01-01T00:00:00Z"
    assert props["publishingProfile"]["publishedDate"] == \
        first.json()["properties"]["publishingProfile"]["publishedDate"]


@pytest.mark.parametrize(("path", "body", "status", "target"), [
    (f"{DEFINITION}/versions/1.0", {"location": "eastus"}, 400, "name"),
    (f"{DEFINITION}/versions/1.0.0", {"location": "westus"}, 400, "location"),
    (f"{DEFINITION}/versions/1.0.0", {"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": [{"name": "westus"}]}}}, 400,
     "properties.publishingProfile.targetRegions"),
    (f"{DEFINITION}/versions/1.0.0", {"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": [{"name": "eastus"}, {"name": "East US"}]}}},
     400, "properties.publishingProfile.targetRegions[1].name"),
    (f"{DEFINITION}/versions/1.0.0", {"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": [{"name": "eastus",
                                                 "regionalReplicaCount": 0}]}}},
     400, "properties.publishingProfile.targetRegions[0].regionalReplicaCount"),
    (f"{DEFINITION}/versions/1.0.0", {"location": "eastus", "properties": {
        "storageProfile": {"source": {"id": "/subscriptions/s/x"}}}}, 400,
     "properties.storageProfile.source"),
    (f"{GALLERY}/images/none/versions/1.0.0", {"location": "eastus"}, 404, None),
    (f"{GALLERY}/images/app2", {"location": "eastus", "properties": {
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}, 400,
     "properties.osType"),
])
def test_bad_requests_are_refused_and_store_nothing(api: Galleries, path: str,
                                                   body: dict[str, Any], status: int,
                                                   target: str | None) -> None:
    r = api.put(path, body)
    assert r.status_code == status, r.text
    if target is not None:
        assert r.json()["error"]["target"] == target
    assert api.get(path).status_code == 404


def test_references_to_missing_or_unreplicated_gallery_images_are_refused(
        api: Galleries) -> None:
    api.publish("1.0.0", ["East US"])
    api.replicate()
    for image_id, words in ((DEFINITION, "none is replicated there"),
                            (f"{DEFINITION}/versions/1.0.0", "not replicated to 'westus'"),
                            (f"{DEFINITION}/versions/9.9.9", "does not exist"),
                            (f"{GALLERY}/images/nope", "image definition 'nope'"),
                            (f"{PROVIDER}/galleries/nope/images/app", "gallery 'nope'")):
        with pytest.raises(Exception) as refused:
            api.scale_set(image_id=image_id, automatic=False)
        assert words in str(refused.value)
        assert getattr(refused.value, "target", None) == \
            "properties.virtualMachineProfile.storageProfile.imageReference.id"
    assert api.world.scale_set_ids() == []


def test_galleries_list_per_group_and_subscription(api: Galleries) -> None:
    assert api.put(f"{PROVIDER}/galleries/gal2", {"location": "eastus"}).status_code == 201
    other = f"/subscriptions/{SUB}/resourceGroups/rg2/providers/Microsoft.Compute/galleries/g3"
    assert api.put(other, {"location": "westus"}).status_code == 201
    moved = api.put(other, {"location": "eastus"})
    assert moved.status_code == 400 and moved.json()["error"]["target"] == "location"
    nowhere = api.put(f"{PROVIDER}/galleries/g4", {"location": "west/us"})
    assert nowhere.status_code == 400 and "not a region name" in nowhere.text
    in_group = api.get(f"{PROVIDER}/galleries").json()
    assert [g["name"] for g in in_group["value"]] == ["gal1", "gal2"]
    everything = api.get(f"/subscriptions/{SUB}/providers/Microsoft.Compute/galleries").json()
    names = [g["name"] for g in everything["value"]]
    names += [g["name"] for g in api.client.get(everything["nextLink"]).json()["value"]]
    assert sorted(names) == ["g3", "gal1", "gal2"]
    shown = api.get(GALLERY).json()
    assert shown["type"] == "Microsoft.Compute/galleries"
    assert shown["properties"]["provisioningState"] == "Succeeded"
    assert [i["name"] for i in api.get(f"{GALLERY}/images").json()["value"]] == ["app"]
    assert api.client.get(GALLERY + "?api-version=2026-04-01").status_code == 400


def test_a_restarted_replicator_resumes_pending_regions(api: Galleries) -> None:
    api.publish("1.0.0", BOTH)
    api.replicate(DELAY / 2)  # half way when the server stops
    api.replicator = Replicator(store=api.world.store, clock=api.world.clock,
                                artifacts=None, delay=DELAY)
    api.replicate(DELAY / 2)
    status = api.get(f"{DEFINITION}/versions/1.0.0", "&$expand=ReplicationStatus").json()
    assert status["properties"]["replicationStatus"]["aggregatedState"] == "Completed"


def test_a_manual_upgrade_goes_to_the_gallery_images_latest(api: Galleries) -> None:
    api.publish("1.0.0", BOTH)
    api.replicate()
    sid = api.scale_set(automatic=False)
    api.publish("1.1.0", BOTH)
    api.replicate()
    run = api.world.start_upgrade(sid)
    assert (run.started_by, run.target.image_version) == (StartedBy.USER, "1.1.0")
    api.world.settle(sid)
    pinned = api.scale_set("pinned", image_id=f"{DEFINITION}/versions/1.0.0", automatic=False)
    with pytest.raises(OperationNotAllowed, match="pins version"):
        api.world.start_upgrade(pinned)


def test_a_managed_image_reference_resolves_to_no_version_without_failing(
        api: Galleries) -> None:
    sid = api.scale_set(image_id=f"{PROVIDER}/images/my-managed-image", automatic=False)
    assert api.image_version(sid) is None
    api.publish("1.0.0", BOTH)
    api.replicate()
    api.world.reconciler.reconcile(sid)
    assert active_run(api, sid) is None
