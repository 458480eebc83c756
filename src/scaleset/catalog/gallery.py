"""Gallery image versions: their names, their ids, and their replication to regions (pure).

A gallery image version (``Microsoft.Compute/galleries/{g}/images/{i}/versions/{v}``)
is named ``Major.Minor.Patch`` and is replicated to the regions of its
``publishingProfile.targetRegions`` (the gallery's own region when that list is
empty). Each region goes ``Replicating -> Completed`` or ``Failed``; the
version is usable in a region only once that region is ``Completed``. Region
names compare normalised: ``"West US"`` is ``"westus"``.

The rules that live only here:

* which names are versions and regions, and how regions normalise;
* how a version's regions follow a new list of target regions
  (:func:`follow_targets`): new regions start replicating, dropped ones are
  forgotten, failed ones start again, completed ones stay completed;
* the aggregated state of a version's replication (:func:`aggregated_state`)
  and the provisioning state it implies (:func:`provisioning_state`);
* what "excluded from latest" means for a region (:func:`excluded_in`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

REPLICATING: Final = "Replicating"
COMPLETED: Final = "Completed"
FAILED: Final = "Failed"

UNKNOWN: Final = "Unknown"
IN_PROGRESS: Final = "InProgress"

GALLERY_TYPE: Final = "Microsoft.Compute/galleries"
IMAGE_TYPE: Final = "Microsoft.Compute/galleries/images"
VERSION_TYPE: Final = "Microsoft.Compute/galleries/images/versions"

_VERSION_NAME = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ]{0,63}$")
# Gallery, image definition: Azure's rule (letters, digits, '.', '_', '-'; 1-80).
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9])?$")
_IMAGE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+))?/?$", re.IGNORECASE)


def is_version_name(name: str) -> bool:
    """Whether ``name`` is a gallery image version name: three dotted integers.

    >>> [is_version_name(n) for n in ("1.10.0", "1.0", "1.0.0.0", "01.0.0", "a.b.c")]
    [True, False, False, False, False]
    """
    return bool(_VERSION_NAME.match(name))


def is_resource_name(name: str) -> bool:
    """Whether ``name`` may name a gallery or an image definition.

    >>> is_resource_name("my_gallery.1"), is_resource_name("-x"), is_resource_name("a/b")
    (True, False, False)
    """
    return bool(_RESOURCE_NAME.match(name))


def is_region(name: str) -> bool:
    """Whether ``name`` reads as a region (``westus``, ``West US 2``).

    >>> is_region("West US 2"), is_region("../etc"), is_region("")
    (True, False, False)
    """
    return bool(_REGION.match(name))


def normalise_region(name: str) -> str:
    """The region's canonical name: lower case, no spaces.

    >>> normalise_region("West US 2")
    'westus2'
    """
    return name.replace(" ", "").lower()


@dataclass(frozen=True, slots=True)
class GalleryImageId:
    """A parsed ``imageReference.id`` of a gallery image (``version`` None: its latest)."""

    subscription: str
    resource_group: str
    gallery: str
    image: str
    version: str | None = None

    @property
    def gallery_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/"
                f"providers/Microsoft.Compute/galleries/{self.gallery}")

    @property
    def definition_id(self) -> str:
        return f"{self.gallery_id}/images/{self.image}"

    def version_id(self, version: str) -> str:
        """The id of one version of this image definition."""
        return f"{self.definition_id}/versions/{version}"


def parse_image_id(text: str | None) -> GalleryImageId | None:
    """The gallery image an ``imageReference.id`` names, or None when it names none.

    ``.../versions/latest`` means the same as no version: the latest.

    >>> parse_image_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
    ...                "galleries/g/images/app/versions/1.2.0").version
    '1.2.0'
    >>> parse_image_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
    ...                "images/managed") is None
    True
    """
    match = _IMAGE_ID.match(text or "")
    if match is None:
        return None
    version = match["version"]
    return GalleryImageId(match["sub"], match["rg"], match["gallery"], match["image"],
                          None if (version or "").lower() in ("", "latest") else version)


@dataclass(frozen=True, slots=True)
class RegionReplication:
    """One target region of a version: where its replication stands."""

    name: str
    """The region as the client spelled it (shown in ``replicationStatus``)."""
    state: str = REPLICATING
    progress: int = 0
    details: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def key(self) -> str:
        return normalise_region(self.name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "progress": self.progress,
                "details": self.details,
                "startedAt": self.started_at.isoformat() if self.started_at else None,
                "completedAt": self.completed_at.isoformat() if self.completed_at else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegionReplication:
        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None
        return cls(name=str(data["name"]), state=str(data.get("state", REPLICATING)),
                   progress=int(data.get("progress", 0)), details=str(data.get("details", "")),
                   started_at=when("startedAt"), completed_at=when("completedAt"))

    def completed(self, now: datetime) -> RegionReplication:
        return replace(self, state=COMPLETED, progress=100, details="", completed_at=now)

    def failed(self, details: str) -> RegionReplication:
        return replace(self, state=FAILED, details=details)


def follow_targets(current: Iterable[RegionReplication], targets: Iterable[str], now: datetime
                   ) -> list[RegionReplication]:
    """The regions of a version after its target regions became ``targets`` (in that order).

    A region already Completed (or still Replicating) stays as it is; a new
    region, or one that Failed, starts replicating at ``now``; a region no
    longer targeted is dropped.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> done = RegionReplication("westus").completed(t)
    >>> [(r.name, r.state) for r in follow_targets([done], ["West US", "eastus"], t)]
    [('westus', 'Completed'), ('eastus', 'Replicating')]
    """
    by_key = {r.key: r for r in current}
    out: list[RegionReplication] = []
    for name in targets:
        kept = by_key.get(normalise_region(name))
        if kept is not None and kept.state != FAILED:
            out.append(kept)
        else:
            out.append(RegionReplication(name=name, started_at=now))
    return out


def aggregated_state(regions: Iterable[RegionReplication]) -> str:
    """``replicationStatus.aggregatedState``: Failed beats InProgress beats Completed.

    >>> aggregated_state([RegionReplication("a", COMPLETED), RegionReplication("b")])
    'InProgress'
    >>> aggregated_state([])
    'Unknown'
    """
    states = {r.state for r in regions}
    if not states:
        return UNKNOWN
    if FAILED in states:
        return FAILED
    if REPLICATING in states:
        return IN_PROGRESS
    return COMPLETED


def provisioning_state(regions: Iterable[RegionReplication], pending: str) -> str:
    """A version's ``provisioningState``: ``pending`` (Creating / Updating) while any
    region replicates, Failed when one failed, else Succeeded."""
    state = aggregated_state(regions)
    if state == FAILED:
        return "Failed"
    if state == IN_PROGRESS:
        return pending
    return "Succeeded"


def available_at(regions: Iterable[RegionReplication], location: str) -> datetime | None:
    """When replication to ``location`` completed; None when it has not (or is not targeted)."""
    key = normalise_region(location)
    for r in regions:
        if r.key == key and r.state == COMPLETED:
            return r.completed_at
    return None


def excluded_in(publishing_profile: Mapping[str, Any], location: str) -> bool:
    """Whether the version is excluded from ``latest`` as seen from ``location``: globally
    (``publishingProfile.excludeFromLatest``) or by that region's target entry.

    >>> excluded_in({"targetRegions": [{"name": "East US", "excludeFromLatest": True}]},
    ...             "eastus")
    True
    """
    if publishing_profile.get("excludeFromLatest") is True:
        return True
    key = normalise_region(location)
    for region in publishing_profile.get("targetRegions") or ():
        if isinstance(region, Mapping) and normalise_region(str(region.get("name", ""))) == key:
            return region.get("excludeFromLatest") is True
    return False
