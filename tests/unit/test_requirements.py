"""The requirements of automatic OS upgrade (pure): each rule, its code and target, and the
invariants: a model that satisfies every rule is accepted; breaking one rule yields exactly
that rule's violation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset.api.versions import COMPUTE
from scaleset.catalog import auto_upgrade
from scaleset.catalog.auto_upgrade import DEFAULT_IMAGES, AllowListError, PlatformImage
from scaleset.model.scaleset import ScaleSet
from scaleset.upgrade import requirements
from scaleset.upgrade.requirements import (
    ClusterFacts,
    Facts,
    ImageKind,
    LoadBalancerFacts,
    Rule,
    Violation,
)

PROBE_ID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb/"
            "probes/http")
GALLERY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal/images/web"
ENDPOINT = "https://westus.servicefabric.azure.com/runtime/clusters/c1"
NEW_APIS = [v for v in COMPUTE if v >= "2018-10-01"]
OLD_APIS = [v for v in COMPUTE if v < "2018-10-01"]
EXTENSIONS = "properties.virtualMachineProfile.extensionProfile.extensions"


@dataclass(frozen=True)
class Setup:
    """A scale set with automatic OS upgrade, and the facts around it."""

    image: tuple[tuple[str, str], ...] = (("publisher", "Canonical"), ("offer", "UbuntuServer"),
                                          ("sku", "18.04-LTS"), ("version", "latest"))
    os_type: str = "Linux"
    windows_updates: bool | None = None
    api_version: str | None = "2026-04-01"
    probe: bool = True
    health_extension: bool = False
    single_placement_group: bool | None = None
    lb_sku: str = "Basic"
    service_fabric: str | None = None
    """The extension's durabilityLevel (None: not a Service Fabric node type)."""
    sf_version: str = "1.1"
    cluster_durability: str | None = None
    """The node type's durability in the cluster (None: the extension's)."""
    cluster_exists: bool = True
    node_type_ref: str = "nt1"
    legacy: bool = False
    mode: str = "Automatic"

    def model(self) -> ScaleSet:
        profile: dict[str, Any] = {"storageProfile": {"imageReference": dict(self.image)}}
        if self.windows_updates is not None:
            profile["osProfile"] = {"windowsConfiguration": {
                "enableAutomaticUpdates": self.windows_updates}}
        if self.probe:
            profile["networkProfile"] = {"healthProbe": {"id": PROBE_ID}}
        extensions = []
        if self.health_extension:
            extensions.append({"name": "health", "properties": {
                "publisher": "Microsoft.ManagedServices",
                "type": f"ApplicationHealth{self.os_type}",
                "typeHandlerVersion": "2.0"}})
        if self.service_fabric is not None:
            extensions.append({"name": "sf", "properties": {
                "publisher": "Microsoft.Azure.ServiceFabric",
                "type": "ServiceFabricNode" if self.os_type == "Windows"
                else "ServiceFabricLinuxNode",
                "typeHandlerVersion": self.sf_version,
                "settings": {"clusterEndpoint": ENDPOINT, "nodeTypeRef": self.node_type_ref,
                             "durabilityLevel": self.service_fabric}}})
        if extensions:
            profile["extensionProfile"] = {"extensions": extensions}
        upgrade: dict[str, Any] = {"mode": self.mode, "automaticOSUpgradePolicy": {
            "enableAutomaticOSUpgrade": True}}
        if self.legacy:
            upgrade["automaticOSUpgrade"] = True
        properties: dict[str, Any] = {"upgradePolicy": upgrade, "virtualMachineProfile": profile}
        if self.single_placement_group is not None:
            properties["singlePlacementGroup"] = self.single_placement_group
        return ScaleSet.model_validate({"location": "westus", "properties": properties})

    def facts(self) -> Facts:
        cluster = None
        if self.cluster_exists:
            cluster = ClusterFacts("cluster1", {
                "NT1": self.cluster_durability or self.service_fabric or "Bronze", "nt2": "Gold"})
        return Facts(os_type=self.os_type,
                     load_balancer=LoadBalancerFacts("lb", self.lb_sku) if self.probe else None,
                     cluster=cluster)

    def check(self, images: tuple[PlatformImage, ...] = DEFAULT_IMAGES) -> list[Violation]:
        return requirements.check(self.model(), api_version=self.api_version, images=images,
                                  facts=self.facts())

    def replace(self, **changes: Any) -> Setup:
        return dataclasses.replace(self, **changes)


def _platform(image: PlatformImage, version: str | None, upper: bool
              ) -> tuple[tuple[str, str], ...]:
    def case(text: str) -> str:
        return text.upper() if upper else text
    ref = [("publisher", case(image.publisher)), ("offer", case(image.offer)),
           ("sku", case(image.sku))]
    if version is not None:
        ref.append(("version", version))
    return tuple(ref)


platform_images = st.builds(_platform, st.sampled_from(DEFAULT_IMAGES),
                            st.sampled_from([None, "latest", "Latest"]), st.booleans())
gallery_images = st.sampled_from([
    (("id", GALLERY),), (("id", GALLERY + "/versions/latest"),),
    (("sharedGalleryImageId", "/SharedGalleries/abc/Images/web"),),
    (("communityGalleryImageId", "/CommunityGalleries/pub/Images/web/Versions/latest"),),
])


@st.composite
def valid_setups(draw: st.DrawFn) -> Setup:
    os_type = draw(st.sampled_from(["Linux", "Windows"]))
    health = draw(st.sampled_from(["probe", "extension", "service fabric"]))
    probe = health == "probe" or (health == "service fabric" and draw(st.booleans()))
    single = draw(st.sampled_from([None, True, False]))
    return Setup(
        image=draw(st.one_of(platform_images, gallery_images)),
        os_type=os_type,
        windows_updates=False if os_type == "Windows" else draw(st.sampled_from(
            [None, True, False])),
        api_version=draw(st.sampled_from([None, *NEW_APIS])),
        probe=probe, health_extension=health in ("extension", "both"),
        single_placement_group=single,
        lb_sku="Standard" if single is False else draw(st.sampled_from(
            ["Basic", "Standard", "Gateway"])),
        service_fabric=draw(st.sampled_from(["Silver", "Gold", "silver"]))
        if health == "service fabric" else None,
        sf_version=draw(st.sampled_from(["1.1", "1.2", "1.10", "2.0", "1.1.0"])),
        # Rolling needs a probe or the Application Health extension (not Service Fabric's).
        mode=draw(st.sampled_from(["Automatic", "Manual", "Rolling"]
                                  if probe or health == "extension" else ["Automatic", "Manual"])),
    )


def _break(rule: Rule, setup: Setup) -> Setup:
    """``setup`` changed so that exactly ``rule`` is broken."""
    kind = requirements.image_of(setup.model()).kind
    service_fabric = setup.replace(service_fabric=setup.service_fabric or "Silver")
    breakers: dict[Rule, Callable[[], Setup]] = {
        Rule.IMAGE_VERSION: lambda: setup.replace(
            image=(*[kv for kv in setup.image if kv[0] != "version"], ("version", "1.2.3"))
            if kind is ImageKind.PLATFORM else (("id", GALLERY + "/versions/1.0.0"),)),
        Rule.IMAGE_KIND: lambda: setup.replace(image=(("id", (
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/custom")),)),
        Rule.IMAGE_NOT_SUPPORTED: lambda: setup.replace(image=(
            ("publisher", "Contoso"), ("offer", "WebApp"), ("sku", "demo"))),
        Rule.HEALTH_SIGNAL: lambda: setup.replace(probe=False, health_extension=False,
                                                  service_fabric=None, mode="Automatic"),
        Rule.HEALTH_SIGNAL_TWICE: lambda: setup.replace(
            probe=True, health_extension=True, single_placement_group=None),
        Rule.ROLLING_HEALTH_SIGNAL: lambda: service_fabric.replace(
            probe=False, health_extension=False, mode="Rolling"),
        Rule.API_VERSION: lambda: setup.replace(api_version=OLD_APIS[-1]),
        Rule.LEGACY_PROPERTY: lambda: setup.replace(legacy=True),
        Rule.WINDOWS_UPDATES: lambda: setup.replace(
            os_type="Windows", windows_updates=True,
            api_version=max(setup.api_version or "2026-04-01", "2019-03-01")),
        Rule.LOAD_BALANCER_SKU: lambda: setup.replace(probe=True, single_placement_group=False,
                                                      lb_sku="Basic", health_extension=False),
        Rule.SF_DURABILITY: lambda: service_fabric.replace(service_fabric="Bronze",
                                                           cluster_durability="Bronze"),
        Rule.SF_EXTENSION_VERSION: lambda: service_fabric.replace(sf_version="1.0"),
        Rule.SF_CLUSTER: lambda: service_fabric.replace(cluster_exists=False),
        Rule.SF_NODE_TYPE: lambda: service_fabric.replace(node_type_ref="nt9"),
        Rule.SF_DURABILITY_MISMATCH: lambda: service_fabric.replace(
            service_fabric="Silver", cluster_durability="Gold"),
    }
    assert set(breakers) == set(Rule), "every rule has a breaker"
    return breakers[rule]()


@given(valid_setups())
def test_a_scale_set_that_meets_every_requirement_is_accepted(setup: Setup) -> None:
    assert setup.check() == []


@given(valid_setups(), st.sampled_from(list(Rule)))
def test_breaking_one_rule_yields_exactly_that_violation(setup: Setup, rule: Rule) -> None:
    found = _break(rule, setup).check()
    assert [v.rule for v in found] == [rule], found
    (violation,) = found
    assert violation.target and violation.message
    assert violation.code in ("InvalidParameter", "BadRequest", "OperationNotAllowed")


@given(valid_setups(), st.sampled_from([r for r in Rule if r is not Rule.ROLLING_HEALTH_SIGNAL]))
def test_nothing_is_required_while_automatic_os_upgrade_is_off(setup: Setup, rule: Rule) -> None:
    model = _break(rule, setup).replace(legacy=False).model()
    raw = model.model_dump(by_alias=True, exclude_none=True)
    raw["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
        "enableAutomaticOSUpgrade"] = False
    off = ScaleSet.model_validate(raw)
    assert not requirements.requested(off)
    assert requirements.check(off, api_version=OLD_APIS[0], images=(), facts=Facts()) == []


BASE = Setup()
SF = Setup(probe=False, service_fabric="Silver")
WINDOWS = Setup(os_type="Windows", windows_updates=False)


@pytest.mark.parametrize(("setup", "rule", "code", "target", "words"), [
    (BASE.replace(image=_platform(DEFAULT_IMAGES[0], "16.04.202001", False)),
     Rule.IMAGE_VERSION, "InvalidParameter",
     "properties.virtualMachineProfile.storageProfile.imageReference.version",
     ["must use Platform or Gallery Image with version set to 'latest'", "16.04.202001"]),
    (BASE.replace(image=(("id", GALLERY + "/versions/1.0.0"),)), Rule.IMAGE_VERSION,
     "InvalidParameter", "properties.virtualMachineProfile.storageProfile.imageReference.id",
     ["/versions/1.0.0"]),
    (BASE.replace(image=(("id", "/subscriptions/s/resourceGroups/rg/providers/"
                                "Microsoft.Compute/images/golden"),)), Rule.IMAGE_KIND,
     "InvalidParameter", "properties.virtualMachineProfile.storageProfile.imageReference.id",
     ["not a gallery image", "golden"]),
    (BASE.replace(image=()), Rule.IMAGE_KIND, "InvalidParameter",
     "properties.virtualMachineProfile.storageProfile.imageReference", ["names no image"]),
    (BASE.replace(image=(("publisher", "Contoso"), ("offer", "WebApp"), ("sku", "demo"))),
     Rule.IMAGE_NOT_SUPPORTED, "BadRequest",
     "properties.virtualMachineProfile.storageProfile.imageReference",
     ["Contoso/WebApp/demo", "Canonical/UbuntuServer/16.04-LTS",
      "MicrosoftWindowsServer/WindowsServer/Datacenter-Core-1903-with-Containers-smalldisk",
      "--auto-upgrade-image Contoso:WebApp:demo"]),
    (BASE.replace(probe=False), Rule.HEALTH_SIGNAL, "BadRequest",
     "properties.virtualMachineProfile.networkProfile.healthProbe",
     ["because a health probe or health extension was not specified", "ApplicationHealth"]),
    (BASE.replace(health_extension=True), Rule.HEALTH_SIGNAL_TWICE, "BadRequest",
     "properties.virtualMachineProfile.networkProfile.healthProbe",
     ["one health signal", "'health'", "not both"]),
    (SF.replace(mode="Rolling"), Rule.ROLLING_HEALTH_SIGNAL, "InvalidParameter",
     "properties.upgradePolicy.mode",
     ["Rolling Upgrade mode is not supported", "healthProbe.id", "ApplicationHealth"]),
    (BASE.replace(api_version="2018-06-01"), Rule.API_VERSION, "OperationNotAllowed",
     "api-version", ["2018-10-01", "2018-06-01"]),
    (BASE.replace(legacy=True), Rule.LEGACY_PROPERTY, "InvalidParameter",
     "properties.upgradePolicy.automaticOSUpgrade", ["enableAutomaticOSUpgrade"]),
    (WINDOWS.replace(windows_updates=None), Rule.WINDOWS_UPDATES, "InvalidParameter",
     "properties.virtualMachineProfile.osProfile.windowsConfiguration.enableAutomaticUpdates",
     ["defaults to true", "2019-03-01"]),
    (BASE.replace(single_placement_group=False), Rule.LOAD_BALANCER_SKU, "InvalidParameter",
     "properties.virtualMachineProfile.networkProfile.healthProbe.id",
     ["Standard load balancer", "'lb' is Basic"]),
    (SF.replace(service_fabric="Bronze"), Rule.SF_DURABILITY, "OperationNotAllowed",
     f"{EXTENSIONS}[0].properties.settings.durabilityLevel", ["'Bronze'", "Silver or Gold"]),
    (SF.replace(sf_version="1.0"), Rule.SF_EXTENSION_VERSION, "OperationNotAllowed",
     f"{EXTENSIONS}[0].properties.typeHandlerVersion", ["1.1 or above", "'1.0'"]),
    (SF.replace(cluster_exists=False), Rule.SF_CLUSTER, "InvalidParameter",
     f"{EXTENSIONS}[0].properties.settings.clusterEndpoint", [ENDPOINT]),
    (SF.replace(node_type_ref="web"), Rule.SF_NODE_TYPE, "InvalidParameter",
     f"{EXTENSIONS}[0].properties.settings.nodeTypeRef", ["'web'", "NT1, nt2"]),
    (SF.replace(cluster_durability="Gold"), Rule.SF_DURABILITY_MISMATCH, "InvalidParameter",
     f"{EXTENSIONS}[0].properties.settings.durabilityLevel", ["'Silver'", "'Gold'"]),
])
def test_each_rule_has_its_code_target_and_message(setup: Setup, rule: Rule, code: str,
                                                   target: str, words: list[str]) -> None:
    (violation,) = setup.check()
    assert (violation.rule, violation.code, violation.target) == (rule, code, target)
    for word in words:
        assert word in violation.message


def test_windows_needs_automatic_updates_off_only_from_2019_03_01() -> None:
    unset = WINDOWS.replace(windows_updates=None)
    assert unset.replace(api_version="2018-10-01").check() == []
    assert [v.rule for v in unset.replace(api_version="2019-03-01").check()] == [
        Rule.WINDOWS_UPDATES]
    assert [v.rule for v in WINDOWS.replace(windows_updates=True).check()] == [
        Rule.WINDOWS_UPDATES]
    # Linux never needs it; without a looked-up OS type, windowsConfiguration says Windows.
    assert BASE.replace(windows_updates=True).check() == []
    model = WINDOWS.replace(windows_updates=True).model()
    assert [v.rule for v in requirements.check(model, api_version=None, images=DEFAULT_IMAGES,
                                               facts=Facts())] == [Rule.WINDOWS_UPDATES]


def test_service_fabric_needs_no_probe_and_compares_versions_as_numbers() -> None:
    assert SF.check() == []
    assert SF.replace(service_fabric="GOLD", sf_version="1.10").check() == []
    assert [v.rule for v in SF.replace(sf_version="1.x").check()] == [
        Rule.SF_EXTENSION_VERSION]
    assert [v.rule for v in SF.replace(sf_version="0.9").check()] == [
        Rule.SF_EXTENSION_VERSION]
    # A durability left out is Bronze (the extension's default).
    model = SF.model()
    settings = model.extensions[0].properties.settings
    assert settings is not None
    del settings["durabilityLevel"]
    found = requirements.check(model, api_version=None, images=DEFAULT_IMAGES,
                               facts=SF.facts())
    assert Rule.SF_DURABILITY in {v.rule for v in found}
    assert "is not set, so it is Bronze" in found[0].message


def test_several_broken_rules_are_all_reported_in_a_fixed_order() -> None:
    setup = BASE.replace(api_version="2017-12-01", probe=False,
                         image=(("publisher", "Contoso"), ("offer", "WebApp"), ("sku", "1"),
                                ("version", "1.0.0")))
    assert [v.rule for v in setup.check()] == [
        Rule.API_VERSION, Rule.IMAGE_VERSION, Rule.IMAGE_NOT_SUPPORTED, Rule.HEALTH_SIGNAL]


def test_an_update_is_held_only_to_what_it_breaks() -> None:
    before = BASE.replace(image=(("publisher", "Contoso"), ("offer", "WebApp"),
                                 ("sku", "demo"))).check()
    after = BASE.replace(probe=False, image=(("publisher", "Contoso"), ("offer", "WebApp"),
                                             ("sku", "demo"))).check()
    assert [v.rule for v in requirements.new_violations(after, before)] == [Rule.HEALTH_SIGNAL]
    other_image = BASE.replace(image=(("publisher", "Contoso"), ("offer", "WebApp"),
                                      ("sku", "other"))).check()
    # Another unsupported image is a new violation, not the one the scale set had.
    assert requirements.new_violations(other_image, before) == other_image


def test_the_allow_list_matches_case_insensitively_and_is_configurable() -> None:
    contoso = (("publisher", "Contoso"), ("offer", "WebApp"), ("sku", "demo"))
    assert BASE.replace(image=contoso).check() != []
    images = auto_upgrade.merged(DEFAULT_IMAGES, [auto_upgrade.parse_urn("contoso:webapp:DEMO")])
    assert BASE.replace(image=contoso).check(images) == []
    assert len(auto_upgrade.merged(DEFAULT_IMAGES, DEFAULT_IMAGES)) == len(DEFAULT_IMAGES) == 12
    # Replacing the list takes Azure's images off it.
    assert [v.rule for v in BASE.check(auto_upgrade.parse_json(
        '[{"publisher": "Contoso", "offer": "WebApp", "sku": "demo"}]'))] == [
        Rule.IMAGE_NOT_SUPPORTED]


@pytest.mark.parametrize("text", ["Contoso:WebApp", "a::c", "a:b:c:d", ""])
def test_a_malformed_urn_is_refused_with_the_form_to_write(text: str) -> None:
    with pytest.raises(AllowListError, match="PUBLISHER:OFFER:SKU"):
        auto_upgrade.parse_urn(text)


@pytest.mark.parametrize(("text", "needle"), [
    ("{", "not JSON"), ('{"publisher": "a"}', "JSON list"),
    ('[{"publisher": "a", "offer": "b"}]', "entry [0]"),
    ('[{"publisher": "a", "offer": "b", "sku": ""}]', "entry [0]"),
])
def test_a_malformed_allow_list_file_is_refused(text: str, needle: str) -> None:
    with pytest.raises(AllowListError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        auto_upgrade.parse_json(text)


@pytest.mark.parametrize("automatic", [True, False])
def test_rolling_mode_needs_a_probe_or_the_health_extension_with_or_without_auto_upgrade(
        automatic: bool) -> None:
    model = Setup(probe=False, mode="Rolling").model()
    raw = model.model_dump(by_alias=True, exclude_none=True)
    raw["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
        "enableAutomaticOSUpgrade"] = automatic
    found = requirements.check(ScaleSet.model_validate(raw), api_version=None,
                               images=DEFAULT_IMAGES, facts=Facts())
    assert found[0].rule is Rule.ROLLING_HEALTH_SIGNAL
    assert [v.rule for v in found] == ([Rule.ROLLING_HEALTH_SIGNAL, Rule.HEALTH_SIGNAL]
                                       if automatic else [Rule.ROLLING_HEALTH_SIGNAL])
    for signal in ({"probe": True}, {"health_extension": True}):
        ok = Setup(probe=False, mode="Rolling").replace(**signal)
        assert ok.check() == []


def test_the_health_extension_counts_only_from_its_publisher() -> None:
    """A look-alike type from another publisher is not the Application Health extension."""
    raw = Setup(probe=False, health_extension=True).model().model_dump(
        by_alias=True, exclude_none=True)
    raw["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"][0][
        "properties"]["publisher"] = "Contoso.Health"
    found = requirements.check(ScaleSet.model_validate(raw), api_version=None,
                               images=DEFAULT_IMAGES, facts=Facts(os_type="Linux"))
    assert [v.rule for v in found] == [Rule.HEALTH_SIGNAL]
