"""The ARM routes, in process, on the virtual clock (reconcile passes driven by the test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.support import IMAGE, PROBE_ID, World

SUB = "00000000-0000-0000-0000-000000000001"
RG = "/subscriptions/" + SUB + "/resourceGroups/rg1/providers/Microsoft.Compute"
V = "?api-version=2026-04-01"
LOC_IMAGES = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
              "Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    def settle(self) -> None:
        self.world.settle()

    def op(self, response: Any) -> dict[str, Any]:
        url = response.headers["Azure-AsyncOperation"]
        body = self.client.get(url).json()
        assert isinstance(body, dict)
        return body


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=2)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


def body(capacity: int = 4, **policy: Any) -> dict[str, Any]:
    upgrade: dict[str, Any] = {"mode": "Rolling",
                               "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}}
    if policy:
        upgrade["rollingUpgradePolicy"] = policy
    return {
        "location": "westus",
        "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "properties": {
            "upgradePolicy": upgrade,
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "vm", "adminUsername": "azureuser",
                              "adminPassword": "S3cret!pass", "customData": "ZWNobyBoaQ=="},
                "storageProfile": {"imageReference": {**IMAGE, "version": "latest"},
                                   "dataDisks": [{"lun": 0, "createOption": "Empty",
                                                  "diskSizeGB": 8}]},
                # World.create made this probe's load balancer.
                "networkProfile": {"healthProbe": {"id": PROBE_ID}},
                "extensionProfile": {"extensions": [{"name": "script", "properties": {
                    "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                    "settings": {"commandToExecute": "echo hi"},
                    "protectedSettings": {"secret": "do-not-echo"}}}]},
            },
        },
    }


def test_a_finished_puts_location_answers_200_with_the_scale_set(api: Api) -> None:
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    assert api.client.get(r.headers["Location"]).status_code == 202
    api.settle()
    final = api.client.get(r.headers["Location"])
    assert final.status_code == 200
    assert final.json()["name"] == "vmss1"
    assert final.json()["properties"]["provisioningState"] == "Succeeded"
    assert final.headers["ETag"] == final.json()["etag"]


def test_create_answers_201_creating_and_the_operation_completes(api: Api) -> None:
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["provisioningState"] == "Creating"
    assert r.headers["Retry-After"] == "1"
    assert r.headers["Azure-AsyncOperation"].startswith("https://testserver/subscriptions/")
    assert "api-version=2026-04-01" in r.headers["Azure-AsyncOperation"]
    assert api.op(r)["status"] == "InProgress"
    creating = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}").json()
    assert creating["properties"]["provisioningState"] == "Creating"
    api.world.reconciler.reconcile(api.world.scale_set_ids()[0])
    api.world.clock.advance(api.world.driver.timings.per_upgrade)
    api.world.reconciler.reconcile(api.world.scale_set_ids()[0])
    assert api.op(r)["status"] == "Succeeded"
    got = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}")
    assert got.status_code == 200
    resource = got.json()
    assert resource["properties"]["provisioningState"] == "Succeeded"
    assert resource["id"] == f"{RG}/virtualMachineScaleSets/vmss1"
    assert resource["name"] == "vmss1"
    assert resource["etag"] and got.headers["ETag"] == resource["etag"]
    ref = resource["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]
    assert ref["version"] == "latest" and ref["exactVersion"] == "1.0.0"


def test_secrets_are_never_returned(api: Api) -> None:
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    for text in (r.text, api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}").text,
                 api.client.get(f"{RG}/virtualMachineScaleSets{V}").text):
        assert "S3cret!pass" not in text
        assert "do-not-echo" not in text
        assert "ZWNobyBoaQ==" not in text


def test_path_segments_are_case_insensitive(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    lower = f"/SUBSCRIPTIONS/{SUB}/resourcegroups/rg1/providers/microsoft.compute/" \
            f"VIRTUALMACHINESCALESETS/vmss1{V}"
    assert api.client.get(lower).status_code == 200


@pytest.mark.parametrize(("query", "code"), [
    ("?api-version=2016-04-30-preview", "NoRegisteredProviderFound"),
    ("", "MissingApiVersionParameter"),
])
def test_api_versions_outside_the_documented_set_are_refused(api: Api, query: str,
                                                             code: str) -> None:
    r = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{query}")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == code
    assert api.client.get(f"{RG}/virtualMachineScaleSets/vmss1?api-version=2018-10-01") \
        .status_code == 404


@pytest.mark.parametrize(("change", "target"), [
    ({"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 20},
     "properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent"),
    ({"maxUnhealthyUpgradedInstancePercent": 101}, "maxUnhealthyUpgradedInstancePercent"),
    ({"pauseTimeBetweenBatches": "five minutes"}, "pauseTimeBetweenBatches"),
])
def test_invalid_policies_are_refused_and_nothing_is_stored(api: Api, change: dict[str, Any],
                                                            target: str) -> None:
    r = api.client.put(f"{RG}/virtualMachineScaleSets/bad{V}", json=body(**change))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert target in error["target"]
    assert api.client.get(f"{RG}/virtualMachineScaleSets/bad{V}").status_code == 404


def test_negative_capacity_and_duplicate_extensions_are_refused(api: Api) -> None:
    negative = body()
    negative["sku"]["capacity"] = -1
    r = api.client.put(f"{RG}/virtualMachineScaleSets/bad{V}", json=negative)
    assert r.status_code == 400 and r.json()["error"]["target"] == "sku.capacity"
    twice = body()
    exts = twice["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"]
    exts.append(dict(exts[0]))
    r = api.client.put(f"{RG}/virtualMachineScaleSets/bad{V}", json=twice)
    assert r.status_code == 400 and "unique" in r.json()["error"]["message"]


def test_etags_are_honoured(api: Api) -> None:
    created = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    etag = created.headers["ETag"]
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(),
                       headers={"If-None-Match": "*"})
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(),
                       headers={"If-Match": '"stale"'})
    assert r.status_code == 412
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=5),
                       headers={"If-Match": etag})
    assert r.status_code == 200
    assert r.json()["properties"]["provisioningState"] == "Updating"


def test_lists_page_with_an_absolute_next_link(api: Api) -> None:
    for name in ("a", "b", "c"):
        api.client.put(f"{RG}/virtualMachineScaleSets/{name}{V}", json=body(capacity=1))
    first = api.client.get(f"{RG}/virtualMachineScaleSets{V}").json()
    assert [s["name"] for s in first["value"]] == ["a", "b"]
    link = first["nextLink"]
    assert link.startswith("https://testserver/") and "api-version=2026-04-01" in link
    second = api.client.get(link).json()
    assert [s["name"] for s in second["value"]] == ["c"] and "nextLink" not in second
    everywhere = api.client.get(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets{V}").json()
    assert len(everywhere["value"]) == 2 and "nextLink" in everywhere


def test_patch_merges_and_scales_out(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=2))
    api.settle()
    r = api.client.patch(f"{RG}/virtualMachineScaleSets/vmss1{V}", json={"sku": {"capacity": 3}})
    assert r.status_code == 200
    assert r.json()["properties"]["upgradePolicy"]["mode"] == "Rolling"  # merged, not replaced
    api.settle()
    instances = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines{V}"
                               "&$expand=instanceView").json()
    ids = [i["instanceId"] for i in instances["value"]]
    assert ids == ["0", "1"] and "nextLink" in instances  # page size 2
    more = api.client.get(instances["nextLink"]).json()
    assert [i["instanceId"] for i in more["value"]] == ["2"]
    assert "instanceView" in instances["value"][0]["properties"]


def test_a_manual_os_upgrade_runs_to_the_end_and_shows_in_history(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}",
                   json=body(capacity=4) | {"properties": {**body()["properties"],
                             "upgradePolicy": {"mode": "Rolling"}}})
    api.settle()
    publish = api.client.put(f"{LOC_IMAGES}/1.1.0{V}", json={
        "location": "westus", "properties": {"osDiskImage": {"operatingSystem": "Linux"}}})
    assert publish.status_code == 201
    r = api.client.post(f"{RG}/virtualMachineScaleSets/vmss1/osRollingUpgrade{V}")
    assert r.status_code == 202
    assert {"azure-asyncoperation", "location", "retry-after"} <= {k.lower() for k in r.headers}
    assert api.op(r)["status"] == "InProgress"
    monitor = api.client.get(r.headers["Location"])
    assert monitor.status_code == 202
    api.settle()
    assert api.op(r)["status"] == "Succeeded"
    final = api.client.get(r.headers["Location"])
    assert (final.status_code, final.content) == (200, b"")  # JS SDK's poller refuses 204
    latest = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/rollingUpgrades/latest{V}")
    assert latest.json()["properties"]["runningStatus"]["code"] == "Completed"
    history = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/osUpgradeHistory{V}").json()
    item = history["value"][0]["properties"]
    assert item["startedBy"] == "User"
    assert item["targetImageReference"]["version"] == "1.1.0"
    vm = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines/0{V}").json()
    assert vm["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.1.0"


def test_publishing_a_newer_version_starts_a_platform_run(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=2))
    api.settle()
    api.client.put(f"{LOC_IMAGES}/1.1.0{V}", json={"location": "westus"})
    api.settle()
    history = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/osUpgradeHistory{V}").json()
    assert history["value"][0]["properties"]["startedBy"] == "Platform"
    assert history["value"][0]["properties"]["runningStatus"]["code"] == "Completed"


def test_cancel_without_a_run_is_a_409_in_the_envelope(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body())
    r = api.client.post(f"{RG}/virtualMachineScaleSets/vmss1/rollingUpgrades/cancel{V}")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "OperationNotAllowed"
    assert "vmss1" in r.json()["error"]["message"]


def test_instances_protection_reimage_and_delete(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=3))
    api.settle()
    url = f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines"
    protect = {"properties": {"protectionPolicy": {
        "protectFromScaleIn": True, "protectFromScaleSetActions": False}}}
    stale = api.client.put(f"{url}/1{V}", json=protect, headers={"If-Match": '"stale"'})
    assert stale.status_code == 412
    etag = api.client.get(f"{url}/1{V}").json()["etag"]
    r = api.client.put(f"{url}/1{V}", json=protect, headers={"If-Match": etag})
    assert r.status_code == 200
    assert r.json()["properties"]["protectionPolicy"]["protectFromScaleIn"] is True
    view = api.client.get(f"{url}/1/instanceView{V}").json()
    assert view["vmHealth"]["status"]["code"] == "HealthState/healthy"
    r = api.client.post(f"{url}/2/reimage{V}", json={"tempDisk": False})
    assert r.status_code == 202
    api.settle()
    assert api.op(r)["status"] == "Succeeded"
    assert api.world.driver.reimage_count(api.world.scale_set_ids()[0], "2") == 1
    r = api.client.delete(f"{url}/0{V}")
    assert r.status_code == 202
    api.settle()
    ids = [i["instanceId"] for i in api.client.get(f"{url}{V}").json()["value"]]
    assert "0" not in ids
    assert api.client.get(f"{url}/0{V}").status_code == 404
    scale_set = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}").json()
    assert scale_set["sku"]["capacity"] == 2


def test_image_versions_list_as_bare_arrays_in_numeric_order(api: Api) -> None:
    for v in ("1.9.0", "1.10.0", "1.2.0"):
        api.client.put(f"{LOC_IMAGES}/{v}{V}", json={"location": "westus"})
    names = [i["name"] for i in api.client.get(f"{LOC_IMAGES}{V}").json()]
    assert names == ["1.0.0", "1.2.0", "1.9.0", "1.10.0"]
    top = api.client.get(f"{LOC_IMAGES}{V}&$top=2&$orderby=name desc").json()
    assert [i["name"] for i in top] == ["1.10.0", "1.9.0"]
    one = api.client.get(f"{LOC_IMAGES}/1.10.0{V}").json()
    assert one["properties"]["osDiskImage"]["operatingSystem"] == "Linux"
    publishers = api.client.get(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers{V}").json()
    assert [p["name"] for p in publishers] == ["Canonical"]


def test_delete_removes_the_scale_set_and_its_instances(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=2))
    api.settle()
    sid = api.world.scale_set_ids()[0]
    r = api.client.delete(f"{RG}/virtualMachineScaleSets/vmss1{V}")
    assert r.status_code == 202
    for _ in range(3):
        api.world.reconciler.reconcile(sid)
    assert api.op(r)["status"] == "Succeeded"
    assert api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}").status_code == 404
    assert api.world.driver.instance_ids(sid) == []
    assert api.client.delete(f"{RG}/virtualMachineScaleSets/vmss1{V}").status_code == 204


def test_unknown_routes_answer_in_the_envelope(api: Api) -> None:
    r = api.client.get(f"/subscriptions/{SUB}/nothing/here{V}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NotFound"


def test_a_body_that_is_not_json_is_a_400_naming_the_body(api: Api) -> None:
    r = api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", content=b"{not json",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "body"
    assert "not valid JSON" in r.json()["error"]["message"]
    assert api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}").status_code == 404


def test_a_provider_types_unknown_api_version_is_refused_as_arm_refuses_it(api: Api) -> None:
    """ARM answers NoRegisteredProviderFound for a resource provider's type (its own routes,
    resource groups and subscriptions, answer InvalidApiVersionParameter)."""
    r = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines/0"
                       "?api-version=2099-01-01")
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert message.startswith("No registered resource provider found for API version "
                              "'2099-01-01' for type 'virtualMachineScaleSets/virtualMachines'")
    assert "2024-07-01" in message
    op = api.client.get(f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/"
                        "operations/x?api-version=2099-01-01")
    assert op.status_code == 400
    assert "for location 'westus' and API version '2099-01-01' for type " \
           "'locations/operations'" in op.json()["error"]["message"]
    group = api.client.get(f"/subscriptions/{SUB}/resourcegroups/rg1?api-version=2099-01-01")
    assert group.json()["error"]["code"] == "InvalidApiVersionParameter"
