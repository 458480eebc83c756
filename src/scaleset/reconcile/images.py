"""The image a scale set's ``imageReference`` names: its versions, ``latest``, artifacts.

Platform images (``publisher/offer/sku``) are published per location; gallery
images (``imageReference.id`` of a gallery image definition, or of one of its
versions) are available in a location once replicated there. ``latest`` is
chosen by :func:`scaleset.catalog.latest.choose`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scaleset.catalog import latest as latest_rules
from scaleset.catalog.latest import Candidate
from scaleset.errors import InvalidParameter
from scaleset.model.scaleset import ScaleSet
from scaleset.store.repository import Tx

ARTIFACT = "artifact"
VERSION_TARGET = "properties.virtualMachineProfile.storageProfile.imageReference.version"
REFERENCE_TARGET = "properties.virtualMachineProfile.storageProfile.imageReference"


def artifact_digest(properties: Mapping[str, Any]) -> str | None:
    """The ``properties.artifact.digest`` of a published version, ``None`` if it has none."""
    artifact = properties.get(ARTIFACT)
    if isinstance(artifact, Mapping):
        digest = artifact.get("digest")
        return str(digest) if digest else None
    return None


def is_platform(model: ScaleSet) -> bool:
    """Whether the model names a platform image (publisher, offer and sku)."""
    ref = model.image_reference
    return bool(ref.publisher and ref.offer and ref.sku)


def wants_latest(model: ScaleSet) -> bool:
    """Whether the model asks for the latest version of its image."""
    return (model.image_reference.version or "").lower() == "latest"


def candidates(tx: Tx, location: str, model: ScaleSet) -> list[Candidate]:
    """Every version of the model's image as seen from ``location`` (any order)."""
    ref = model.image_reference
    if is_platform(model):
        assert ref.publisher and ref.offer and ref.sku
        return [Candidate(version=v.version, published_at=v.published_at,
                          available_at=v.published_at, digest=artifact_digest(v.properties),
                          os_type=v.os_type)
                for v in tx.image_versions(location, ref.publisher, ref.offer, ref.sku)]
    return []


def latest(tx: Tx, location: str, model: ScaleSet, now: datetime) -> Candidate | None:
    """The version ``latest`` means for this model now; None when it does not ask for
    ``latest`` or nothing is eligible."""
    if not wants_latest(model):
        return None
    return latest_rules.choose(candidates(tx, location, model), now)


def resolve_image_version(tx: Tx, location: str, model: ScaleSet, now: datetime
                          ) -> str | None:
    """The concrete image version ``model`` asks for: ``latest`` resolved now, or as pinned.

    Refused (400, nothing stored) when the pinned version or any ``latest`` does
    not exist in ``location``.
    """
    ref = model.image_reference
    if ref.version is None or not is_platform(model):
        return None if (ref.version or "latest").lower() == "latest" else ref.version
    found = candidates(tx, location, model)
    if not wants_latest(model):
        if ref.version not in {c.version for c in found}:
            raise InvalidParameter(
                f"image {ref.publisher}/{ref.offer}/{ref.sku} has no version '{ref.version}' "
                f"in '{location}'; use a published version or 'latest'", target=VERSION_TARGET)
        return ref.version
    chosen = latest_rules.choose(found, now)
    if chosen is None:
        raise InvalidParameter(
            f"no version of image {ref.publisher}/{ref.offer}/{ref.sku} is published in "
            f"'{location}', so 'latest' cannot be resolved; publish one first",
            target=REFERENCE_TARGET)
    return chosen.version


def digests(tx: Tx, location: str, model: ScaleSet) -> dict[str, str | None]:
    """Version -> artifact digest, for every version of the model's image."""
    return {c.version: c.digest for c in candidates(tx, location, model)}
