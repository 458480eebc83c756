"""Every requirement of automatic OS upgrade through the ARM routes, on PUT and on PATCH: the
error code and target a user sees, and nothing stored (GET shows the previous model, or 404)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.catalog import auto_upgrade
from scaleset.reconcile.settings import ShellSettings
from scaleset.store.repository import Store
from tests.support import IMAGE, PROBE_ID, World

SUB = "00000000-0000-0000-0000-000000000001"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg1"
VMSS = GROUP + "/providers/Microsoft.Compute/virtualMachineScaleSets"
LBS = GROUP + "/providers/Microsoft.Network/loadBalancers"
CLUSTERS = GROUP + "/providers/Microsoft.ServiceFabric/clusters"
IMAGES = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers"
V = "2026-04-01"
SFV = {"api-version": "2021-06-01"}
PROFILE = "properties.virtualMachineProfile"
IMAGE_REF = PROFILE + ".storageProfile.imageReference"
SF_SETTINGS = PROFILE + ".extensionProfile.extensions[0].properties.settings"
WINDOWS = {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
           "sku": "2019-Datacenter"}
CONTOSO = {"publisher": "Contoso", "offer": "WebApp", "sku": "demo"}


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    def put(self, name: str, body: dict[str, Any], api_version: str = V) -> Any:
        return self.client.put(f"{VMSS}/{name}", json=body, params={"api-version": api_version})

    def patch(self, name: str, body: dict[str, Any], api_version: str = V) -> Any:
        return self.client.patch(f"{VMSS}/{name}", json=body,
                                 params={"api-version": api_version})

    def get(self, name: str) -> Any:
        return self.client.get(f"{VMSS}/{name}", params={"api-version": V})

    def publish(self, image: dict[str, str], version: str = "1.0.0", os: str = "Linux") -> Any:
        path = (f"{IMAGES}/{image['publisher']}/artifacttypes/vmimage/offers/{image['offer']}/"
                f"skus/{image['sku']}/versions/{version}")
        r = self.client.put(path, params={"api-version": V}, json={
            "location": "westus", "properties": {"osDiskImage": {"operatingSystem": os}}})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def cluster(self, name: str = "sfc1", **durability: str) -> dict[str, Any]:
        node_types = [{"name": n, "isPrimary": i == 0, "vmInstanceCount": 5,
                       "durabilityLevel": level}
                      for i, (n, level) in enumerate((durability or {"nt1": "Silver"}).items())]
        r = self.client.put(f"{CLUSTERS}/{name}", params=SFV, json={
            "location": "westus", "properties": {
                "managementEndpoint": "https://sfc1.westus.example:19080",
                "reliabilityLevel": "Silver", "nodeTypes": node_types}})
        assert r.status_code == 200, r.text
        return dict(r.json())


def make_api(store: Store, settings: Callable[[ShellSettings], ShellSettings] | None = None
             ) -> Iterator[Api]:
    world = World.create(store)
    chosen = settings(world.settings) if settings else world.settings
    context = ApiContext(store=store, clock=world.clock, settings=chosen, auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def body(*, image: dict[str, str] | None = None, version: str = "latest",
         probe: str | None = PROBE_ID, automatic: bool = True,
         extensions: list[dict[str, Any]] | None = None, windows_updates: bool | None = None,
         mode: str = "Automatic", **properties: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "storageProfile": {"imageReference": {**(image or IMAGE), "version": version}}}
    if probe is not None:
        profile["networkProfile"] = {"healthProbe": {"id": probe}}
    if extensions is not None:
        profile["extensionProfile"] = {"extensions": extensions}
    if windows_updates is not None:
        profile["osProfile"] = {"windowsConfiguration": {
            "enableAutomaticUpdates": windows_updates}}
    return {"location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 2},
            "properties": {"upgradePolicy": {"mode": mode, "automaticOSUpgradePolicy": {
                "enableAutomaticOSUpgrade": automatic}}, "virtualMachineProfile": profile,
                **properties}}


def health_extension() -> dict[str, Any]:
    return {"name": "health", "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
        "typeHandlerVersion": "2.0", "settings": {"protocol": "http", "port": 80,
                                                  "requestPath": "/health"}}}


def sf_extension(endpoint: str, *, durability: str | None = "Silver", version: str = "1.1",
                 node_type: str = "nt1") -> dict[str, Any]:
    settings = {"clusterEndpoint": endpoint, "nodeTypeRef": node_type}
    if durability is not None:
        settings["durabilityLevel"] = durability
    return {"name": "sf", "properties": {
        "publisher": "Microsoft.Azure.ServiceFabric", "type": "ServiceFabricLinuxNode",
        "typeHandlerVersion": version, "settings": settings}}


def refused(response: Any, code: str, target: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["target"]) == (code, target), error
    assert error["details"][0]["target"] == target
    return dict(error)


def standard_lb(api: Api) -> str:
    r = api.client.put(f"{LBS}/std", params={"api-version": "2024-05-01"}, json={
        "location": "westus", "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {"probes": [{"name": "http", "properties": {
            "protocol": "Http", "port": 80, "requestPath": "/health"}}]}})
    assert r.status_code == 201, r.text
    return f"{LBS}/std/probes/http"


# -- PUT: each rule refused with its code and target, nothing stored ---------------------------

def _custom_image(b: dict[str, Any]) -> dict[str, Any]:
    b["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] = {
        "id": f"{GROUP}/providers/Microsoft.Compute/images/golden"}
    return b


PUT_CASES: list[tuple[str, Callable[[Api], tuple[dict[str, Any], str]], str, str]] = [
    ("pinned version", lambda api: (body(version="1.0.0"), V), "InvalidParameter",
     IMAGE_REF + ".version"),
    ("unsupported platform image", lambda api: (api.publish(CONTOSO) and body(image=CONTOSO), V),
     "BadRequest", IMAGE_REF),
    ("custom image", lambda api: (_custom_image(body()), V), "InvalidParameter",
     IMAGE_REF + ".id"),
    ("no health signal", lambda api: (body(probe=None), V), "BadRequest",
     PROFILE + ".networkProfile.healthProbe"),
    ("probe and health extension", lambda api: (body(extensions=[health_extension()]), V),
     "BadRequest", PROFILE + ".networkProfile.healthProbe"),
    ("rolling without a health signal", lambda api: (body(probe=None, mode="Rolling"), V),
     "InvalidParameter", "properties.upgradePolicy.mode"),
    ("rolling without a health signal, no auto upgrade", lambda api: (
        body(probe=None, mode="Rolling", automatic=False), V),
     "InvalidParameter", "properties.upgradePolicy.mode"),
    ("rolling with only a look-alike health extension", lambda api: (body(
        probe=None, mode="Rolling", automatic=False, extensions=[{
            **health_extension(), "properties": {**health_extension()["properties"],
                                                 "publisher": "Contoso.Health"}}]), V),
     "InvalidParameter", "properties.upgradePolicy.mode"),
    ("old api-version", lambda api: (body(), "2018-06-01"), "OperationNotAllowed",
     "api-version"),
    ("windows automatic updates", lambda api: (
        api.publish(WINDOWS, os="Windows") and body(image=WINDOWS), "2019-03-01"),
     "InvalidParameter", PROFILE + ".osProfile.windowsConfiguration.enableAutomaticUpdates"),
    ("basic load balancer", lambda api: (body(singlePlacementGroup=False), V),
     "InvalidParameter", PROFILE + ".networkProfile.healthProbe.id"),
    ("bronze", lambda api: (body(probe=None, extensions=[sf_extension(
        api.cluster(nt1="Bronze")["properties"]["clusterEndpoint"], durability="Bronze")]), V),
     "OperationNotAllowed", SF_SETTINGS + ".durabilityLevel"),
    ("extension 1.0", lambda api: (body(probe=None, extensions=[sf_extension(
        api.cluster()["properties"]["clusterEndpoint"], version="1.0")]), V),
     "OperationNotAllowed", PROFILE + ".extensionProfile.extensions[0].properties"
                                      ".typeHandlerVersion"),
    ("durability mismatch", lambda api: (body(probe=None, extensions=[sf_extension(
        api.cluster(nt1="Gold")["properties"]["clusterEndpoint"], durability="Silver")]), V),
     "InvalidParameter", SF_SETTINGS + ".durabilityLevel"),
    ("unknown cluster", lambda api: (body(probe=None, extensions=[sf_extension(
        "https://westus.servicefabric.azure.com/runtime/clusters/nope")]), V),
     "InvalidParameter", SF_SETTINGS + ".clusterEndpoint"),
    ("unknown node type", lambda api: (body(probe=None, extensions=[sf_extension(
        api.cluster()["properties"]["clusterEndpoint"], node_type="web")]), V),
     "InvalidParameter", SF_SETTINGS + ".nodeTypeRef"),
]


@pytest.mark.parametrize(("case", "make", "code", "target"), PUT_CASES,
                         ids=[c[0] for c in PUT_CASES])
def test_a_create_that_breaks_a_requirement_is_refused_and_stores_nothing(
        api: Api, case: str, make: Callable[[Api], tuple[dict[str, Any], str]], code: str,
        target: str) -> None:
    request, api_version = make(api)
    refused(api.put("vmss1", request, api_version), code, target)
    assert api.get("vmss1").status_code == 404
    assert api.world.scale_set_ids() == []


# -- PATCH: a change that breaks a rule, or turns automatic upgrade on, is refused ------------

def _sf_patch(api: Api, **extension: Any) -> dict[str, Any]:
    endpoint = api.cluster(nt1="Silver")["properties"]["clusterEndpoint"]
    return {"properties": {"virtualMachineProfile": {"extensionProfile": {"extensions": [
        sf_extension(endpoint, **extension)]}}}}


PATCH_CASES: list[tuple[str, Callable[[Api], dict[str, Any]], str, str]] = [
    ("pinned version", lambda api: {"properties": {"virtualMachineProfile": {
        "storageProfile": {"imageReference": {"version": "1.0.0"}}}}},
     "InvalidParameter", IMAGE_REF + ".version"),
    ("unsupported platform image", lambda api: api.publish(CONTOSO) and {"properties": {
        "virtualMachineProfile": {"storageProfile": {"imageReference": CONTOSO}}}},
     "BadRequest", IMAGE_REF),
    ("custom image", lambda api: {"properties": {"virtualMachineProfile": {"storageProfile": {
        "imageReference": {"id": f"{GROUP}/providers/Microsoft.Compute/images/golden"}}}}},
     "InvalidParameter", IMAGE_REF + ".id"),
    ("health probe removed", lambda api: {"properties": {"virtualMachineProfile": {
        "networkProfile": {"healthProbe": None}}}},
     "BadRequest", PROFILE + ".networkProfile.healthProbe"),
    ("health extension added next to the probe", lambda api: {"properties": {
        "virtualMachineProfile": {"extensionProfile": {"extensions": [health_extension()]}}}},
     "BadRequest", PROFILE + ".networkProfile.healthProbe"),
    ("mode Rolling with the probe removed", lambda api: {"properties": {
        "upgradePolicy": {"mode": "Rolling", "automaticOSUpgradePolicy": {
            "enableAutomaticOSUpgrade": False}},
        "virtualMachineProfile": {"networkProfile": {"healthProbe": None}}}},
     "InvalidParameter", "properties.upgradePolicy.mode"),
    ("multiple placement groups on a basic load balancer", lambda api: {"properties": {
        "singlePlacementGroup": False}},
     "InvalidParameter", PROFILE + ".networkProfile.healthProbe.id"),
    ("bronze", lambda api: _sf_patch(api, durability="Bronze"),
     "OperationNotAllowed", SF_SETTINGS + ".durabilityLevel"),
    ("extension 1.0", lambda api: _sf_patch(api, version="1.0"), "OperationNotAllowed",
     PROFILE + ".extensionProfile.extensions[0].properties.typeHandlerVersion"),
    ("durability mismatch", lambda api: _sf_patch(api, durability="Gold"),
     "InvalidParameter", SF_SETTINGS + ".durabilityLevel"),
    ("unknown node type", lambda api: _sf_patch(api, node_type="nt7"),
     "InvalidParameter", SF_SETTINGS + ".nodeTypeRef"),
]


@pytest.mark.parametrize(("case", "make", "code", "target"), PATCH_CASES,
                         ids=[c[0] for c in PATCH_CASES])
def test_a_patch_that_breaks_a_requirement_is_refused_and_changes_nothing(
        api: Api, case: str, make: Callable[[Api], dict[str, Any]], code: str,
        target: str) -> None:
    assert api.put("vmss1", body()).status_code == 201
    before = api.get("vmss1").json()
    refused(api.patch("vmss1", make(api)), code, target)
    assert api.get("vmss1").json() == before


@pytest.mark.parametrize(("case", "make", "code", "target"), [
    ("version", lambda api: body(version="1.0.0", automatic=False), "InvalidParameter",
     IMAGE_REF + ".version"),
    ("health", lambda api: body(probe=None, automatic=False), "BadRequest",
     PROFILE + ".networkProfile.healthProbe"),
    ("windows", lambda api: api.publish(WINDOWS, os="Windows") and body(
        image=WINDOWS, automatic=False), "InvalidParameter",
     PROFILE + ".osProfile.windowsConfiguration.enableAutomaticUpdates"),
], ids=["pinned version", "no health signal", "windows automatic updates"])
def test_a_patch_that_turns_automatic_upgrade_on_must_meet_every_requirement(
        api: Api, case: str, make: Callable[[Api], dict[str, Any]], code: str,
        target: str) -> None:
    assert api.put("vmss1", make(api)).status_code == 201  # allowed while it is off
    before = api.get("vmss1").json()
    on = {"properties": {"upgradePolicy": {"automaticOSUpgradePolicy": {
        "enableAutomaticOSUpgrade": True}}}}
    refused(api.patch("vmss1", on), code, target)
    assert api.get("vmss1").json() == before
    # The same body through PUT, as a read-modify-write client sends it.
    whole = copy.deepcopy(before)
    whole["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
        "enableAutomaticOSUpgrade"] = True
    refused(api.put("vmss1", whole), code, target)
    assert api.get("vmss1").json() == before


# -- happy paths -----------------------------------------------------------------------------

def test_each_requirement_met_is_accepted(api: Api) -> None:
    assert api.put("probe", body()).status_code == 201
    assert api.put("extension", body(probe=None, extensions=[health_extension()])) \
        .status_code == 201
    assert api.put("standard", body(probe=standard_lb(api), singlePlacementGroup=False)) \
        .status_code == 201
    assert api.put("single", body(singlePlacementGroup=True)).status_code == 201
    api.publish(WINDOWS, os="Windows")
    assert api.put("windows", body(image=WINDOWS, windows_updates=False),
                   "2019-03-01").status_code == 201
    assert api.put("pinned-off", body(version="1.0.0", automatic=False)).status_code == 201
    # Turning it on again with every requirement met.
    assert api.patch("pinned-off", {"properties": {
        "upgradePolicy": {"automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
        "virtualMachineProfile": {"storageProfile": {"imageReference": {
            "version": "latest"}}}}}).status_code == 200


@pytest.mark.parametrize("durability", ["Silver", "Gold"])
def test_a_service_fabric_node_type_of_silver_or_gold_needs_no_probe(
        api: Api, durability: str) -> None:
    endpoint = api.cluster(nt1=durability)["properties"]["clusterEndpoint"]
    r = api.put("sf", body(probe=None, extensions=[sf_extension(
        endpoint.upper().replace("HTTPS://", "https://"), durability=durability.lower())]))
    assert r.status_code == 201, r.text
    # Changing something else keeps it valid; raising the extension version too.
    assert api.patch("sf", {"sku": {"capacity": 3}}).status_code == 200
    assert api.patch("sf", {"properties": {"virtualMachineProfile": {"extensionProfile": {
        "extensions": [sf_extension(endpoint, durability=durability, version="1.10")]}}}}
    ).status_code == 200


def test_windows_needs_automatic_updates_off_from_api_version_2019_03_01(api: Api) -> None:
    api.publish(WINDOWS, os="Windows")
    refused(api.put("win", body(image=WINDOWS), "2019-03-01"), "InvalidParameter",
            PROFILE + ".osProfile.windowsConfiguration.enableAutomaticUpdates")
    refused(api.put("win", body(image=WINDOWS, windows_updates=True)), "InvalidParameter",
            PROFILE + ".osProfile.windowsConfiguration.enableAutomaticUpdates")
    assert api.get("win").status_code == 404
    assert api.put("win", body(image=WINDOWS), "2018-10-01").status_code == 201
    # Turning Windows Update on later is refused; keeping it as it was is not.
    assert api.patch("win", {"sku": {"capacity": 3}}, "2019-03-01").status_code == 200
    api.patch("win", {"properties": {"virtualMachineProfile": {"osProfile": {
        "windowsConfiguration": {"enableAutomaticUpdates": False}}}}})
    refused(api.patch("win", {"properties": {"virtualMachineProfile": {"osProfile": {
        "windowsConfiguration": {"enableAutomaticUpdates": True}}}}}), "InvalidParameter",
        PROFILE + ".osProfile.windowsConfiguration.enableAutomaticUpdates")


@pytest.mark.parametrize("api_version", ["2017-03-30", "2017-12-01", "2018-04-01",
                                         "2018-06-01"])
def test_old_api_versions_work_without_automatic_upgrade_and_refuse_it(
        api: Api, api_version: str) -> None:
    assert api.put("old", body(automatic=False), api_version).status_code == 201
    assert api.patch("old", {"sku": {"capacity": 3}}, api_version).status_code == 200
    before = api.get("old").json()
    error = refused(api.patch("old", {"properties": {"upgradePolicy": {
        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}}}}, api_version),
        "OperationNotAllowed", "api-version")
    assert "2018-10-01" in error["message"] and api_version in error["message"]
    # The boolean of those api-versions is refused too (at any api-version).
    legacy = {"properties": {"upgradePolicy": {"automaticOSUpgrade": True}}}
    error = refused(api.patch("old", legacy, api_version), "OperationNotAllowed", "api-version")
    assert [d["target"] for d in error["details"]] == [
        "api-version", "properties.upgradePolicy.automaticOSUpgrade"]
    refused(api.patch("old", legacy), "InvalidParameter",
            "properties.upgradePolicy.automaticOSUpgrade")
    assert api.get("old").json() == before


def test_every_broken_rule_is_listed_in_the_details(api: Api) -> None:
    error = refused(api.put("many", body(version="1.0.0", probe=None), "2018-04-01"),
                    "OperationNotAllowed", "api-version")
    assert [d["code"] for d in error["details"]] == [
        "OperationNotAllowed", "InvalidParameter", "BadRequest"]
    assert "(and 2 more, see details)" in error["message"]


# -- the allow-list --------------------------------------------------------------------------

def test_the_allow_list_can_take_an_image_and_the_image_version_says_so(store: Store) -> None:
    def allow_contoso(settings: ShellSettings) -> ShellSettings:
        return ShellSettings(health_timeout=settings.health_timeout,
                             auto_upgrade_images=auto_upgrade.merged(
                                 settings.auto_upgrade_images,
                                 [auto_upgrade.PlatformImage(**CONTOSO)]))

    for api in make_api(store, allow_contoso):
        supported = api.publish(CONTOSO)["properties"]["automaticOSUpgradeProperties"]
        assert supported == {"automaticOSUpgradeSupported": True}
        assert api.put("contoso", body(image=CONTOSO)).status_code == 201


def test_an_image_version_says_whether_automatic_upgrade_supports_it(api: Api) -> None:
    def supported(image: dict[str, str]) -> bool:
        path = (f"{IMAGES}/{image['publisher'].upper()}/artifacttypes/vmimage/offers/"
                f"{image['offer']}/skus/{image['sku'].lower()}/versions/1.0.0")
        got = api.client.get(path, params={"api-version": V}).json()
        return bool(got["properties"]["automaticOSUpgradeProperties"][
            "automaticOSUpgradeSupported"])

    api.publish(CONTOSO)
    assert supported(IMAGE) is True
    assert supported(CONTOSO) is False


def test_a_scale_set_stored_before_the_allow_list_changed_stays_updatable(store: Store) -> None:
    for api in make_api(store, lambda s: ShellSettings(
            auto_upgrade_images=(auto_upgrade.PlatformImage(**CONTOSO),))):
        api.publish(CONTOSO)
        assert api.put("legacy", body(image=CONTOSO)).status_code == 201
    for api in make_api(store):  # the operator went back to Azure's list
        assert api.patch("legacy", {"sku": {"capacity": 5}}).status_code == 200
        refused(api.patch("legacy", {"properties": {"virtualMachineProfile": {
            "networkProfile": {"healthProbe": None}}}}), "BadRequest",
            PROFILE + ".networkProfile.healthProbe")
        assert api.get("legacy").json()["sku"]["capacity"] == 5


@pytest.mark.parametrize("mode", ["Rolling", "Manual"])
def test_either_health_signal_alone_is_accepted_and_both_without_auto_upgrade_too(
        api: Api, mode: str) -> None:
    for name, request in [
            ("probe", body(mode=mode)),
            ("extension", body(mode=mode, probe=None, extensions=[health_extension()])),
            ("both-manual", body(mode=mode, automatic=False, extensions=[health_extension()]))]:
        r = api.put(name, request)
        assert r.status_code in (200, 201), (name, r.text)
