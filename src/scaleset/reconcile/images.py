"""The image a scale set's ``imageReference`` names: its versions, ``latest``, artifacts.

Platform images (``publisher/offer/sku``) are published per location; gallery
images (``imageReference.id`` of a gallery image definition, or of one of its
versions) are available in a location once replicated there. ``latest`` is
chosen by :func:`scaleset.catalog.latest.choose`. Any other ``imageReference.id``
(a managed image, say) has no versions here and resolves to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scaleset.catalog import gallery as gallery_rules
from scaleset.catalog import latest as latest_rules
from scaleset.catalog.gallery import GalleryImageId
from scaleset.catalog.latest import Candidate
from scaleset.errors import InvalidParameter
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import galleries
from scaleset.store.repository import Tx

ARTIFACT = "artifact"
VERSION_TARGET = "properties.virtualMachineProfile.storageProfile.imageReference.version"
REFERENCE_TARGET = "properties.virtualMachineProfile.storageProfile.imageReference"
ID_TARGET = "properties.virtualMachineProfile.storageProfile.imageReference.id"


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


def gallery_image(model: ScaleSet) -> GalleryImageId | None:
    """The gallery image the model's ``imageReference.id`` names (None: it names none)."""
    return gallery_rules.parse_image_id(model.image_reference.id)


def wants_latest(model: ScaleSet) -> bool:
    """Whether the model asks for the latest version of its image: ``version: latest`` of a
    platform image, or a gallery image definition's id (without ``/versions/...``)."""
    gallery = gallery_image(model)
    if gallery is not None:
        return gallery.version is None
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
    gallery = gallery_image(model)
    if gallery is not None:
        return gallery_candidates(tx, location, gallery)
    return []


def gallery_candidates(tx: Tx, location: str, image: GalleryImageId) -> list[Candidate]:
    """The versions of a gallery image definition as seen from ``location``: available
    once replicated there, excluded from latest globally or for that region."""
    definition = tx.get_resource(image.definition_id)
    if definition is None:
        return []
    os_type = str((definition.body.get("properties") or {}).get("osType") or "Linux")
    out = []
    for row in tx.resources(gallery_rules.VERSION_TYPE, parent_id=definition.id):
        profile = (row.body.get("properties") or {}).get("publishingProfile") or {}
        record = galleries.artifact(row) or {}
        end_of_life = profile.get("endOfLifeDate")
        out.append(Candidate(
            version=row.name, published_at=row.created_at,
            available_at=gallery_rules.available_at(galleries.regions(row), location),
            excluded_from_latest=gallery_rules.excluded_in(profile, location),
            end_of_life=datetime.fromisoformat(end_of_life) if end_of_life else None,
            digest=str(record["digest"]) if record.get("digest") else None,
            os_type=str(record.get("osType") or os_type)))
    return out


def target_reference(model: ScaleSet, version: str | None) -> dict[str, str] | None:
    """The ``targetImageReference`` of a run to ``version`` of the model's image.

    A gallery image's is the version's id; a platform image's names publisher,
    offer, sku and version.
    """
    if version is None:
        return None
    gallery = gallery_image(model)
    if gallery is not None:
        return {"id": gallery.version_id(version)}
    ref = model.image_reference
    out = {k: v for k, v in (("publisher", ref.publisher), ("offer", ref.offer),
                             ("sku", ref.sku), ("id", ref.id)) if v}
    out["version"] = version
    return out


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
    gallery = gallery_image(model)
    if gallery is not None:
        return _resolve_gallery(tx, location, gallery, now)
    if ref.version is None or not is_platform(model):
        # Not an image this control plane publishes (e.g. a managed image): nothing to
        # resolve; whether automatic upgrade may use it is the requirement checks' call.
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


def _resolve_gallery(tx: Tx, location: str, image: GalleryImageId, now: datetime) -> str:
    definition = tx.get_resource(image.definition_id)
    if definition is None:
        gallery = tx.get_resource(image.gallery_id)
        missing = (f"image definition '{image.image}' in gallery '{image.gallery}'"
                   if gallery is not None else f"gallery '{image.gallery}'")
        raise InvalidParameter(
            f"imageReference.id names {missing}, which does not exist; create it (or fix the "
            "id) first", target=ID_TARGET)
    found = gallery_candidates(tx, location, image)
    if image.version is not None:
        pinned = next((c for c in found if c.version == image.version), None)
        if pinned is None:
            raise InvalidParameter(
                f"imageReference.id names version '{image.version}' of gallery image "
                f"'{image.image}', which does not exist; publish it or name another version",
                target=ID_TARGET)
        if pinned.available_at is None:
            raise InvalidParameter(
                f"gallery image version '{image.version}' of '{image.image}' is not replicated "
                f"to '{location}' (yet); add '{location}' to its targetRegions and wait for "
                "its replication to complete, or name another version", target=ID_TARGET)
        return pinned.version
    chosen = latest_rules.choose(found, now)
    if chosen is None:
        raise InvalidParameter(
            f"no version of gallery image '{image.image}' can be 'latest' in '{location}': "
            "none is replicated there that is not excluded from latest nor past its "
            "endOfLifeDate; publish one with targetRegions including "
            f"'{location}' and wait for its replication", target=ID_TARGET)
    return chosen.version
