"""What a scale set must satisfy to have automatic OS upgrade, or Rolling mode (pure).

The seed's "Requirements" and "Service Fabric requirements", checked when a
PUT or PATCH writes a model with ``enableAutomaticOSUpgrade`` true, and the one
rule of upgrade mode Rolling, checked on every write. This module
owns every such rule; ``check`` returns the violations (data), and the
scale-set commands refuse the request with the first one (all of them in the
error's ``details``), storing nothing.

The rules, each a :class:`Rule`:

* upgrade mode Rolling has a health probe or the Application Health extension
  (what an extension is: :mod:`scaleset.model.extensions`), with or without
  automatic OS upgrade: its batches wait for upgraded instances to be healthy;
* the image is a platform image or a gallery image, with version ``latest``
  (a gallery image: its id without ``/versions/``, or ``/versions/latest``);
  a custom image that is not a gallery image is refused;
* a platform image is on the allow-list (:mod:`scaleset.catalog.auto_upgrade`);
* a health probe (``networkProfile.healthProbe``) or the Application Health
  extension gives the health signal, unless the scale set is a Service Fabric
  node type (Service Fabric reports health itself); not both a probe and the
  extension (two signals could disagree);
* the request's Compute api-version is 2018-10-01 or later (the first with
  ``automaticOSUpgradePolicy``); the older ``upgradePolicy.automaticOSUpgrade``
  boolean is refused at every api-version;
* a Windows image at api-version 2019-03-01 or later has
  ``windowsConfiguration.enableAutomaticUpdates`` explicitly false (Azure's
  default is true);
* with ``singlePlacementGroup: false``, the health probe's load balancer is a
  Standard one (a load balancer without a sku is Basic);
* a Service Fabric extension has ``durabilityLevel`` Silver or Gold,
  ``typeHandlerVersion`` 1.1 or above (compared as numbers), names an existing
  cluster (``clusterEndpoint``) and node type (``nodeTypeRef``), and has the
  node type's durability.

Error codes, all HTTP 400: ``InvalidParameter`` when one field's value breaks
a rule; Azure's own code where it is known: ``BadRequest`` for a missing
health signal and an unsupported platform image, ``OperationNotAllowed`` for
the Service Fabric durability and extension version, and for the api-version
(the feature does not exist there). Every violation has a ``target``: the
JSON path of the field to change (``api-version`` for the api-version).

What cannot be read off the model — the image's OS type, the sku of the
probe's load balancer, the Service Fabric cluster — the shell looks up and
hands in as :class:`Facts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from scaleset.catalog import auto_upgrade
from scaleset.catalog.auto_upgrade import PlatformImage
from scaleset.model.extensions import ExtensionKind
from scaleset.model.scaleset import Extension, ScaleSet
from scaleset.model.servicefabric import DURABILITY_LEVELS

FIRST_API_VERSION: Final = "2018-10-01"
"""The first Compute api-version with ``automaticOSUpgradePolicy``."""
WINDOWS_UPDATES_API_VERSION: Final = "2019-03-01"
"""From this api-version on, Windows needs ``enableAutomaticUpdates: false``."""
MIN_SERVICE_FABRIC_VERSION: Final = (1, 1)


PROFILE: Final = "properties.virtualMachineProfile"
IMAGE_TARGET: Final = PROFILE + ".storageProfile.imageReference"
HEALTH_PROBE_TARGET: Final = PROFILE + ".networkProfile.healthProbe"
WINDOWS_UPDATES_TARGET: Final = (PROFILE + ".osProfile.windowsConfiguration"
                                 ".enableAutomaticUpdates")
MODE_TARGET: Final = "properties.upgradePolicy.mode"
ENABLE_TARGET: Final = "properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade"
LEGACY_TARGET: Final = "properties.upgradePolicy.automaticOSUpgrade"
LEGACY_FIELD: Final = "automaticOSUpgrade"

LATEST_MESSAGE: Final = ("virtualMachineScaleSets with Automatic OS Upgrade enabled must use "
                         "Platform or Gallery Image with version set to 'latest'.")
NO_HEALTH_MESSAGE: Final = ("Automatic OS Upgrade is not supported for this Virtual Machine "
                            "Scale Set because a health probe or health extension was not "
                            "specified.")


class Rule(StrEnum):
    """One requirement; the value reads well in a log line."""

    IMAGE_VERSION = "ImageVersionMustBeLatest"
    IMAGE_KIND = "PlatformOrGalleryImageRequired"
    IMAGE_NOT_SUPPORTED = "PlatformImageNotSupported"
    HEALTH_SIGNAL = "HealthSignalRequired"
    HEALTH_SIGNAL_TWICE = "OneHealthSignalOnly"
    ROLLING_HEALTH_SIGNAL = "RollingUpgradeNeedsHealthSignal"
    API_VERSION = "ApiVersionTooOld"
    LEGACY_PROPERTY = "LegacyAutomaticOSUpgradeProperty"
    WINDOWS_UPDATES = "WindowsAutomaticUpdatesMustBeOff"
    LOAD_BALANCER_SKU = "StandardLoadBalancerRequired"
    SF_DURABILITY = "ServiceFabricDurabilityTooLow"
    SF_EXTENSION_VERSION = "ServiceFabricExtensionTooOld"
    SF_CLUSTER = "ServiceFabricClusterUnknown"
    SF_NODE_TYPE = "ServiceFabricNodeTypeUnknown"
    SF_DURABILITY_MISMATCH = "ServiceFabricDurabilityMismatch"


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule: the ARM error code, the field to change, and what to do."""

    rule: Rule
    code: str
    target: str
    message: str

    def __repr__(self) -> str:
        return f"Violation({self.rule}, {self.code}, target={self.target!r})"

    def to_wire(self) -> dict[str, str]:
        """An ARM error ``details`` entry."""
        return {"code": self.code, "target": self.target, "message": self.message}


@dataclass(frozen=True, slots=True)
class LoadBalancerFacts:
    """The load balancer the model's health probe belongs to."""

    name: str
    sku: str = "Basic"
    """``sku.name``: Basic, Standard or Gateway (Azure's default is Basic)."""


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """The Service Fabric cluster at the extension's ``clusterEndpoint``."""

    name: str
    node_types: Mapping[str, str] = field(default_factory=dict)
    """Node type name -> its durabilityLevel (Bronze when the cluster did not say)."""

    def durability(self, node_type: str) -> str | None:
        """The durability of ``node_type`` (names are case-insensitive); None: no such type."""
        for name, level in self.node_types.items():
            if name.lower() == node_type.lower():
                return level
        return None


@dataclass(frozen=True, slots=True)
class Facts:
    """What the shell looked up for the model; each None when there was nothing to find."""

    os_type: str | None = None
    """The image's OS type as published (Linux/Windows); None: unknown."""
    load_balancer: LoadBalancerFacts | None = None
    """The health probe's load balancer; None: no probe, or it does not exist."""
    cluster: ClusterFacts | None = None
    """The cluster the Service Fabric extension names; None: none by that endpoint."""


def _legacy_flag(model: ScaleSet) -> bool:
    extra = model.properties.upgrade_policy.model_extra or {}
    return extra.get(LEGACY_FIELD) is True


def requested(model: ScaleSet) -> bool:
    """Whether the model turns automatic OS upgrade on (either property).

    >>> requested(ScaleSet.model_validate({"location": "westus", "properties": {
    ...     "upgradePolicy": {"automaticOSUpgrade": True}}}))
    True
    """
    return model.automatic_os_upgrade.enable_automatic_os_upgrade or _legacy_flag(model)


# -- the image -------------------------------------------------------------------------------

class ImageKind(StrEnum):
    PLATFORM = "platform"
    GALLERY = "gallery"
    CUSTOM = "custom"
    NONE = "none"


_GALLERY_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+"
    r"/images/(?P<image>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$", re.IGNORECASE)
_SHARED_ID = re.compile(
    r"^/(?:SharedGalleries|CommunityGalleries)/[^/]+/Images/(?P<image>[^/]+)"
    r"(?:/Versions/(?P<version>[^/]+))?/?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the model's ``imageReference`` says about the image."""

    kind: ImageKind
    version: str | None
    """The version it pins; None when it asks for latest."""
    target: str
    """The field naming the image (and its version)."""
    reference: str
    """The image as a reader knows it."""


def image_of(model: ScaleSet) -> ImageFacts:
    """Classify the model's image reference.

    >>> image_of(ScaleSet.model_validate({"location": "w", "properties": {
    ...     "virtualMachineProfile": {"storageProfile": {"imageReference": {
    ...         "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/"
    ...               "galleries/gal/images/web/versions/1.0.0"}}}}})).kind
    <ImageKind.GALLERY: 'gallery'>
    """
    ref = model.image_reference
    for value, target in ((ref.id, "id"), (ref.shared_gallery_image_id, "sharedGalleryImageId"),
                          (ref.community_gallery_image_id, "communityGalleryImageId")):
        if not value:
            continue
        where = f"{IMAGE_TARGET}.{target}"
        match = _GALLERY_ID.match(value.strip()) or _SHARED_ID.match(value.strip())
        if match is None:
            return ImageFacts(ImageKind.CUSTOM, None, where, value)
        version = match["version"]
        if version is not None and version.lower() == "latest":
            version = None
        return ImageFacts(ImageKind.GALLERY, version, where, value)
    if ref.publisher and ref.offer and ref.sku:
        version = ref.version if (ref.version or "latest").lower() != "latest" else None
        return ImageFacts(ImageKind.PLATFORM, version, f"{IMAGE_TARGET}.version",
                          f"{ref.publisher}/{ref.offer}/{ref.sku}")
    return ImageFacts(ImageKind.NONE, None, IMAGE_TARGET, "none")


def _image_rules(model: ScaleSet, images: tuple[PlatformImage, ...]) -> list[Violation]:
    image = image_of(model)
    if image.kind is ImageKind.NONE:
        return [Violation(
            Rule.IMAGE_KIND, "InvalidParameter", IMAGE_TARGET,
            f"{LATEST_MESSAGE} The scale set names no image: set imageReference to a platform "
            "image (publisher, offer, sku, version 'latest') or a gallery image (id), or turn "
            "automaticOSUpgradePolicy.enableAutomaticOSUpgrade off.")]
    if image.kind is ImageKind.CUSTOM:
        return [Violation(
            Rule.IMAGE_KIND, "InvalidParameter", image.target,
            f"{LATEST_MESSAGE} imageReference '{image.reference}' is a custom image that is "
            "not a gallery image, and custom images cannot be upgraded automatically. Publish "
            "it as a gallery image version and reference the gallery image (its id without "
            "'/versions/...'), or turn automaticOSUpgradePolicy.enableAutomaticOSUpgrade off.")]
    out = []
    if image.version is not None:
        where = "imageReference.version" if image.kind is ImageKind.PLATFORM else \
            "the version in imageReference's id"
        fix = "set imageReference.version to 'latest'" if image.kind is ImageKind.PLATFORM \
            else f"drop '/versions/{image.version}' from the id (or use '/versions/latest')"
        out.append(Violation(
            Rule.IMAGE_VERSION, "InvalidParameter", image.target,
            f"{LATEST_MESSAGE} {where} is '{image.version}': {fix}, or turn "
            "automaticOSUpgradePolicy.enableAutomaticOSUpgrade off to keep a pinned version."))
    ref = model.image_reference
    if image.kind is ImageKind.PLATFORM and ref.publisher and ref.offer and ref.sku and \
            not auto_upgrade.allows(images, ref.publisher, ref.offer, ref.sku):
        out.append(Violation(
            Rule.IMAGE_NOT_SUPPORTED, "BadRequest", IMAGE_TARGET,
            "Automatic OS Upgrade cannot be enabled on virtualMachineScaleSets configured with "
            f"platform image {image.reference}: it does not support automatic OS upgrade "
            f"here. Supported platform images: {auto_upgrade.describe(images)}. Use one of "
            "them or a gallery image, or ask the operator to add this one "
            f"(scaleset serve --auto-upgrade-image {ref.publisher}:{ref.offer}:{ref.sku})."))
    return out


# -- extensions ------------------------------------------------------------------------------

def service_fabric_extension(model: ScaleSet) -> tuple[int, Extension] | None:
    """The Service Fabric node extension and its index, if the model has one."""
    for index, extension in enumerate(model.extensions):
        if extension.kind is ExtensionKind.SERVICE_FABRIC:
            return index, extension
    return None


def service_fabric_setting(extension: Extension, name: str) -> str | None:
    """A string setting of the Service Fabric extension (``clusterEndpoint``, ...)."""
    value = (extension.properties.settings or {}).get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def handler_version(text: str | None) -> tuple[int, ...] | None:
    """``typeHandlerVersion`` as numbers; None when it is not dotted integers.

    >>> handler_version("1.10") > handler_version("1.9")
    True
    >>> handler_version("1.x") is None
    True
    """
    if text is None or not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        return None
    return tuple(int(p) for p in text.strip().split("."))


def _service_fabric_rules(model: ScaleSet, facts: Facts) -> list[Violation]:
    found = service_fabric_extension(model)
    if found is None:
        return []
    index, extension = found
    base = f"{PROFILE}.extensionProfile.extensions[{index}].properties"
    settings = f"{base}.settings"
    out = []
    declared = service_fabric_setting(extension, "durabilityLevel")
    durability = DURABILITY_LEVELS.get((declared or "bronze").lower(), declared)
    if durability == "Bronze":
        unset = "" if declared else " (settings.durabilityLevel is not set, so it is Bronze)"
        out.append(Violation(
            Rule.SF_DURABILITY, "OperationNotAllowed", f"{settings}.durabilityLevel",
            "Automatic OS Upgrade is not allowed on Virtual Machine Scale Sets having Service "
            f"Fabric extension with durabilityLevel as 'Bronze'{unset}. Set the extension "
            f"'{extension.name}' settings.durabilityLevel to Silver or Gold, the same as its "
            "node type's durabilityLevel in the cluster."))
    version = extension.properties.type_handler_version
    number = handler_version(version)
    if number is None or number < MIN_SERVICE_FABRIC_VERSION:
        out.append(Violation(
            Rule.SF_EXTENSION_VERSION, "OperationNotAllowed", f"{base}.typeHandlerVersion",
            "Service Fabric VM Extension version should be 1.1 or above for Auto OS Upgrade "
            f"support; extension '{extension.name}' has typeHandlerVersion "
            f"'{version or '(not set)'}'. Set typeHandlerVersion to 1.1 or later."))
    endpoint = service_fabric_setting(extension, "clusterEndpoint")
    if endpoint is None or facts.cluster is None:
        what = "has no settings.clusterEndpoint" if endpoint is None else \
            f"settings.clusterEndpoint '{endpoint}' names no Service Fabric cluster"
        out.append(Violation(
            Rule.SF_CLUSTER, "InvalidParameter", f"{settings}.clusterEndpoint",
            f"Service Fabric extension '{extension.name}' {what}, so its durability cannot be "
            "checked against the cluster. Create the cluster (PUT .../providers/"
            "Microsoft.ServiceFabric/clusters/{name}) and copy its properties.clusterEndpoint "
            "into the extension's settings."))
        return out
    cluster = facts.cluster
    node_type = service_fabric_setting(extension, "nodeTypeRef")
    cluster_durability = cluster.durability(node_type) if node_type else None
    if node_type is None or cluster_durability is None:
        names = ", ".join(sorted(cluster.node_types)) or "none"
        what = "has no settings.nodeTypeRef" if node_type is None else \
            f"settings.nodeTypeRef '{node_type}' is not a node type of cluster '{cluster.name}'"
        out.append(Violation(
            Rule.SF_NODE_TYPE, "InvalidParameter", f"{settings}.nodeTypeRef",
            f"Service Fabric extension '{extension.name}' {what} (its node types: {names}). "
            "Set settings.nodeTypeRef to the node type this scale set runs."))
        return out
    expected = DURABILITY_LEVELS.get(cluster_durability.lower(), cluster_durability)
    if durability != expected:
        out.append(Violation(
            Rule.SF_DURABILITY_MISMATCH, "InvalidParameter", f"{settings}.durabilityLevel",
            f"Service Fabric extension '{extension.name}' has durabilityLevel '{durability}' "
            f"but node type '{node_type}' of cluster '{cluster.name}' has '{expected}'; they "
            "must be the same. Change one of them so they agree (Silver or Gold)."))
    return out


# -- the whole check -------------------------------------------------------------------------

def _mode_rules(model: ScaleSet) -> list[Violation]:
    # Rolling batches wait for each upgraded instance to report healthy: without a
    # signal there is nothing to wait for, with or without automatic OS upgrade.
    if model.properties.upgrade_policy.mode != "Rolling" or model.health_probe_id is not None \
            or model.health_extension is not None:
        return []
    return [Violation(
        Rule.ROLLING_HEALTH_SIGNAL, "InvalidParameter", MODE_TARGET,
        "Rolling Upgrade mode is not supported for this Virtual Machine Scale Set because a "
        "health probe or health extension was not specified. Set "
        "networkProfile.healthProbe.id to a load balancer probe, add the Application Health "
        "extension (publisher Microsoft.ManagedServices, type ApplicationHealthLinux or "
        "ApplicationHealthWindows), or use upgradePolicy.mode Manual or Automatic.")]


def _health_rules(model: ScaleSet, facts: Facts, service_fabric: bool) -> list[Violation]:
    network = model.properties.virtual_machine_profile.network_profile
    probe = network.health_probe if network is not None else None
    health_extension = model.health_extension
    if probe is not None and health_extension is not None:
        # Two signals could disagree on one instance; Azure takes exactly one.
        return [Violation(
            Rule.HEALTH_SIGNAL_TWICE, "BadRequest", HEALTH_PROBE_TARGET,
            "A Virtual Machine Scale Set with Automatic OS Upgrade uses one health signal: "
            "either networkProfile.healthProbe or the Application Health extension "
            f"'{health_extension.name}', not both. Remove networkProfile.healthProbe, or "
            "remove the extension.")]
    if probe is None and health_extension is None:
        if service_fabric:
            return []  # Service Fabric's own health gates the rollout
        return [Violation(
            Rule.HEALTH_SIGNAL, "BadRequest", HEALTH_PROBE_TARGET,
            f"{NO_HEALTH_MESSAGE} Set networkProfile.healthProbe.id to a load balancer probe, "
            "or add the Application Health extension (publisher Microsoft.ManagedServices, "
            "type ApplicationHealthLinux or ApplicationHealthWindows) to "
            "extensionProfile.extensions.")]
    lb = facts.load_balancer
    if probe is not None and model.properties.single_placement_group is False and \
            lb is not None and lb.sku.lower() != "standard":
        return [Violation(
            Rule.LOAD_BALANCER_SKU, "InvalidParameter", f"{HEALTH_PROBE_TARGET}.id",
            "A scale set with singlePlacementGroup false (multiple placement groups) needs its "
            f"health probe on a Standard load balancer; load balancer '{lb.name}' is "
            f"{lb.sku}. Use a probe of a Standard load balancer (sku.name Standard), or set "
            "singlePlacementGroup to true.")]
    return []


def _os_type(model: ScaleSet, facts: Facts) -> str:
    if facts.os_type:
        return facts.os_type
    profile = model.properties.virtual_machine_profile
    os_disk = profile.storage_profile.os_disk
    if os_disk is not None and os_disk.os_type:
        return os_disk.os_type
    os_profile = profile.os_profile
    return "Windows" if os_profile is not None and os_profile.windows_configuration is not None \
        else "Linux"


def _windows_rules(model: ScaleSet, facts: Facts, api_version: str | None
                   ) -> list[Violation]:
    if _os_type(model, facts).lower() != "windows" or (
            api_version is not None and api_version < WINDOWS_UPDATES_API_VERSION):
        return []
    os_profile = model.properties.virtual_machine_profile.os_profile
    config = os_profile.windows_configuration if os_profile is not None else None
    value = config.enable_automatic_updates if config is not None else None
    if value is False:
        return []
    state = "is true" if value else "is not set, and it defaults to true"
    return [Violation(
        Rule.WINDOWS_UPDATES, "InvalidParameter", WINDOWS_UPDATES_TARGET,
        "windowsConfiguration.enableAutomaticUpdates cannot be set to true if "
        "upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade is already true, "
        f"starting from APIversion {WINDOWS_UPDATES_API_VERSION}; it {state}. Set "
        "osProfile.windowsConfiguration.enableAutomaticUpdates to false: automatic OS "
        "upgrade replaces the OS disk, and Windows Update must not patch it in between.")]


def _api_rules(model: ScaleSet, api_version: str | None) -> list[Violation]:
    out = []
    if api_version is not None and api_version < FIRST_API_VERSION:
        out.append(Violation(
            Rule.API_VERSION, "OperationNotAllowed", "api-version",
            f"Automatic OS Upgrade needs Compute api-version {FIRST_API_VERSION} or later; this "
            f"request used {api_version}. Send it with api-version={FIRST_API_VERSION} or "
            "later and set upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade, "
            "or leave automatic OS upgrade off."))
    if _legacy_flag(model):
        out.append(Violation(
            Rule.LEGACY_PROPERTY, "InvalidParameter", LEGACY_TARGET,
            "upgradePolicy.automaticOSUpgrade was replaced by "
            "upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade in api-version "
            f"{FIRST_API_VERSION}; remove automaticOSUpgrade and set that instead (with "
            f"api-version {FIRST_API_VERSION} or later)."))
    return out


def check(model: ScaleSet, *, api_version: str | None, images: Iterable[PlatformImage],
          facts: Facts) -> list[Violation]:
    """Every requirement ``model`` breaks: upgrade mode Rolling's health signal, then, when
    the model asks for automatic OS upgrade, that feature's; empty when all hold.

    ``api_version`` is the request's Compute api-version (None: not an API request, e.g.
    the simulator; the newest api-version's rules apply); ``images`` the allow-list of
    platform images. Violations come in a fixed order: upgrade mode, api-version, image, health,
    Windows, Service Fabric.
    """
    mode = _mode_rules(model)
    if not requested(model):
        return mode
    service_fabric = service_fabric_extension(model) is not None
    return [*mode, *_api_rules(model, api_version),
            *_image_rules(model, tuple(images)),
            *_health_rules(model, facts, service_fabric),
            *_windows_rules(model, facts, api_version),
            *_service_fabric_rules(model, facts)]


def new_violations(current: list[Violation], previous: list[Violation]) -> list[Violation]:
    """The violations of ``current`` the previous model did not already have.

    An update is refused only for what it breaks: a scale set stored before a rule
    existed (or before the operator shortened the allow-list) stays updatable, but a
    change that breaks a rule, or turns automatic OS upgrade on, is refused.
    """
    return [v for v in current if v not in previous]
