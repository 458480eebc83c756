"""Galleries, image definitions and image versions: commands and ARM-shaped views.

Stored in the generic ``resources`` table: ``body`` is the resource as GET
returns it (without the read-only fields derived at read time), ``state`` the
server's own facts. A version's state holds its artifact (digest, OS type,
entrypoint: fixed at first publish, never changed) and its replication, one
entry per target region (see :mod:`scaleset.catalog.gallery`)::

    {"artifact": {"digest": "sha256:...", "osType": "Linux", "entrypoint": [...]},
     "source": {"path": "..."},            # what the artifact was ingested from
     "regions": [{"name": "West US", "state": "Completed", "progress": 100, ...}],
     "pending": "Creating"}                # provisioningState while replicating

Each command checks everything, then writes in one transaction (bad input
changes nothing). Deleting a gallery or definition that still has children is
refused, as Azure refuses it; so is deleting a version a scale set pins. The
replicator (:mod:`scaleset.reconcile.replication`) moves regions along.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from scaleset.catalog import gallery as rules
from scaleset.catalog.gallery import RegionReplication
from scaleset.errors import Conflict, InvalidParameter, NotFound, OperationNotAllowed
from scaleset.model import gallery as model
from scaleset.store.repository import ResourceRow, Store, Tx

PROVIDER: Final = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute"
SOURCE_TARGET: Final = "properties.storageProfile.source"
REGIONS_TARGET: Final = "properties.publishingProfile.targetRegions"
ARTIFACT: Final = "artifact"


def gallery_id(subscription: str, resource_group: str, name: str) -> str:
    """The canonical id of a gallery (names as the caller spelled them)."""
    return (PROVIDER.format(sub=subscription, rg=resource_group)
            + f"/galleries/{name}")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _same_region(a: str, b: str) -> bool:
    return rules.normalise_region(a) == rules.normalise_region(b)


# -- reads ----------------------------------------------------------------------------------

def load(store: Store, resource_id: str, what: str) -> ResourceRow:
    """The resource, or 404 naming it (``what``: e.g. "gallery image version")."""
    with store.transaction() as tx:
        row = tx.get_resource(resource_id)
    if row is None:
        raise NotFound(f"The {what} '{resource_id.rsplit('/', 1)[-1]}' was not found "
                       f"({resource_id}).")
    return row


def regions(row: ResourceRow) -> list[RegionReplication]:
    """A version's target regions with their replication, in target order."""
    return [RegionReplication.from_json(r) for r in row.state.get("regions") or ()]


def artifact(row: ResourceRow) -> Mapping[str, Any] | None:
    """A version's artifact record (digest, osType, entrypoint), None if it has no files."""
    found = row.state.get(ARTIFACT)
    return found if isinstance(found, Mapping) else None


def replication_status(row: ResourceRow) -> dict[str, Any]:
    """``properties.replicationStatus`` as ``$expand=ReplicationStatus`` shows it."""
    found = regions(row)
    return {"aggregatedState": rules.aggregated_state(found),
            "summary": [{"region": r.name, "state": r.state, "details": r.details,
                         "progress": r.progress} for r in found]}


def version_provisioning_state(row: ResourceRow) -> str:
    return rules.provisioning_state(regions(row), str(row.state.get("pending") or "Creating"))


def put_outcome(row: ResourceRow | None) -> tuple[str, str | None, str | None]:
    """(status, error code, error message) of a version PUT's operation: it ends when
    replication to every target region has ended."""
    if row is None:
        return ("Failed", "ResourceNotFound",
                "the gallery image version was deleted before it finished replicating")
    found = regions(row)
    state = rules.aggregated_state(found)
    if state == rules.FAILED:
        failed = "; ".join(f"{r.name}: {r.details}" for r in found if r.state == rules.FAILED)
        return ("Failed", "ReplicationFailed",
                f"replication of gallery image version '{row.name}' failed ({failed}); PUT the "
                "version again to retry the failed regions")
    if state == rules.IN_PROGRESS:
        return "InProgress", None, None
    return "Succeeded", None, None


def view(row: ResourceRow, *, expand_replication: bool = False) -> dict[str, Any]:
    """The resource as GET returns it: read-only fields filled in."""
    body = dict(row.body)
    props = dict(body.get("properties") or {})
    if row.type.lower() == rules.VERSION_TYPE.lower():
        props["provisioningState"] = version_provisioning_state(row)
        found = artifact(row)
        if found is not None:
            props[ARTIFACT] = dict(found)
        if expand_replication:
            props["replicationStatus"] = replication_status(row)
    else:
        props["provisioningState"] = "Succeeded"
    body["properties"] = props
    return body


def _children(tx: Tx, row: ResourceRow, child_type: str) -> list[ResourceRow]:
    return tx.resources(child_type, parent_id=row.id)


# -- galleries ------------------------------------------------------------------------------

def put_gallery(store: Store, *, subscription: str, resource_group: str, name: str,
                body: model.Gallery, now: datetime) -> tuple[ResourceRow, bool]:
    """Create or replace a gallery; (row, created). Its location never changes."""
    if not rules.is_resource_name(name):
        raise InvalidParameter(
            f"gallery name '{name}' is not valid: use 1-80 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit", target="name")
    if not rules.is_region(body.location):
        raise InvalidParameter(
            f"location '{body.location}' is not a region name: use letters, digits and "
            "spaces, e.g. 'westus' or 'West US 2'", target="location")
    key = gallery_id(subscription, resource_group, name)
    with store.transaction(write=True) as tx:
        existing = tx.get_resource(key, for_update=True)
        if existing is not None and not _same_region(existing.location, body.location):
            raise InvalidParameter(
                f"Changing property 'location' is not allowed: gallery '{existing.name}' is in "
                f"'{existing.location}'. Create a new gallery in '{body.location}' instead.",
                target="location")
        shown_id = str(existing.body["id"]) if existing else key
        shown_name = existing.name if existing else name
        props = {k: v for k, v in body.properties.items() if k != "provisioningState"}
        props["identifier"] = {"uniqueName": f"{subscription}-{shown_name.upper()}"}
        wire: dict[str, Any] = {"id": shown_id, "name": shown_name, "type": rules.GALLERY_TYPE,
                                "location": body.location, "properties": props}
        if body.tags is not None:
            wire["tags"] = body.tags
        row = ResourceRow(id=key, type=rules.GALLERY_TYPE, parent_id=None,
                          subscription=subscription, resource_group=resource_group,
                          name=shown_name, location=body.location, body=wire, state={},
                          created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def delete_gallery(store: Store, resource_id: str) -> bool:
    """Delete a gallery (refused while it holds image definitions); False when absent."""
    with store.transaction(write=True) as tx:
        row = tx.get_resource(resource_id, for_update=True)
        if row is None:
            return False
        children = _children(tx, row, rules.IMAGE_TYPE)
        if children:
            raise Conflict(
                f"Can not delete resource before nested resources are deleted: gallery "
                f"'{row.name}' still holds image definitions "
                f"{', '.join(repr(c.name) for c in children)}; delete them first.",
                code="CannotDeleteResource")
        return tx.delete_resource(row.id)


def _parent(tx: Tx, parent_id: str, what: str) -> ResourceRow:
    row = tx.get_resource(parent_id, for_update=True)
    if row is None:
        raise NotFound(f"The parent {what} '{parent_id.rsplit('/', 1)[-1]}' was not found "
                       f"({parent_id}); create it first.", code="ParentResourceNotFound")
    return row


def _check_location(parent: ResourceRow, location: str, what: str) -> None:
    if not _same_region(parent.location, location):
        raise InvalidParameter(
            f"{what} must be in its gallery's location '{parent.location}', not '{location}'; "
            f"set location to '{parent.location}' (replicate to other regions with "
            "publishingProfile.targetRegions)", target="location")


# -- image definitions ----------------------------------------------------------------------

def put_image(store: Store, *, gallery: str, name: str, body: model.GalleryImage,
              now: datetime) -> tuple[ResourceRow, bool]:
    """Create or replace an image definition; (row, created).

    ``osType``, ``osState`` and ``identifier`` never change once defined: every
    version already published was checked against them.
    """
    if not rules.is_resource_name(name):
        raise InvalidParameter(
            f"image definition name '{name}' is not valid: use 1-80 letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit", target="name")
    with store.transaction(write=True) as tx:
        parent = _parent(tx, gallery, "gallery")
        _check_location(parent, body.location, "An image definition")
        key = f"{parent.body['id']}/images/{name}"
        existing = tx.get_resource(key, for_update=True)
        props = body.properties.to_wire()
        if existing is not None:
            old = existing.body.get("properties") or {}
            for field in ("osType", "osState"):
                if old.get(field) != props.get(field):
                    raise Conflict(
                        f"Changing property '{field}' is not allowed: image definition "
                        f"'{existing.name}' is {old.get(field)}. Create a new image definition "
                        "for the other value.", target=f"properties.{field}",
                        code="PropertyChangeNotAllowed")
            old_identifier = {k: str(v).lower() for k, v in (old.get("identifier") or {}).items()}
            new_identifier = {k: str(v).lower() for k, v in props["identifier"].items()}
            if old_identifier != new_identifier:
                raise Conflict(
                    f"Changing property 'identifier' is not allowed: image definition "
                    f"'{existing.name}' is {old.get('identifier')}. Create a new image "
                    "definition for another publisher/offer/sku.",
                    target="properties.identifier", code="PropertyChangeNotAllowed")
        shown_name = existing.name if existing else name
        wire: dict[str, Any] = {"id": str(existing.body["id"]) if existing else key,
                                "name": shown_name, "type": rules.IMAGE_TYPE,
                                "location": body.location, "properties": props}
        if body.tags is not None:
            wire["tags"] = body.tags
        row = ResourceRow(id=key, type=rules.IMAGE_TYPE, parent_id=parent.id,
                          subscription=parent.subscription,
                          resource_group=parent.resource_group, name=shown_name,
                          location=body.location, body=wire, state={},
                          created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def delete_image(store: Store, resource_id: str) -> bool:
    """Delete an image definition (refused while it has versions); False when absent."""
    with store.transaction(write=True) as tx:
        row = tx.get_resource(resource_id, for_update=True)
        if row is None:
            return False
        children = _children(tx, row, rules.VERSION_TYPE)
        if children:
            raise Conflict(
                f"Can not delete resource before nested resources are deleted: image "
                f"definition '{row.name}' still has versions "
                f"{', '.join(c.name for c in children)}; delete them first.",
                code="CannotDeleteResource")
        return tx.delete_resource(row.id)


# -- image versions -------------------------------------------------------------------------

def target_regions(body: model.GalleryImageVersion) -> list[dict[str, Any]]:
    """``targetRegions`` as stored: defaults filled in; the version's own location when
    the list is empty (Azure's default: the source region only)."""
    profile = body.properties.publishing_profile
    given = profile.target_regions or [model.TargetRegion(name=body.location)]
    out = []
    for region in given:
        wire = region.to_wire()
        wire.setdefault("regionalReplicaCount", profile.replica_count)
        wire.setdefault("storageAccountType", profile.storage_account_type)
        wire["excludeFromLatest"] = region.exclude_from_latest
        out.append(wire)
    return out


def check_version(tx: Tx, *, image: str, name: str, body: model.GalleryImageVersion
                  ) -> tuple[ResourceRow, ResourceRow | None]:
    """Every check of a version PUT that needs no files: (definition, existing version).

    Raised before anything is ingested or stored.
    """
    if not rules.is_version_name(name):
        raise InvalidParameter(
            f"gallery image version name '{name}' is not valid: use Major.Minor.Patch, three "
            "integers without leading zeros, e.g. '1.2.0'", target="name")
    definition = tx.get_resource(image)
    if definition is None:
        raise NotFound(f"The parent image definition '{image.rsplit('/', 1)[-1]}' was not "
                       f"found ({image}); create it first.", code="ParentResourceNotFound")
    _check_location(definition, body.location, "An image version")
    seen: set[str] = set()
    for i, region in enumerate(body.properties.publishing_profile.target_regions):
        target = f"{REGIONS_TARGET}[{i}].name"
        if not rules.is_region(region.name):
            raise InvalidParameter(
                f"target region '{region.name}' is not a region name: use letters, digits and "
                "spaces, e.g. 'westus' or 'West US 2'", target=target)
        key = rules.normalise_region(region.name)
        if key in seen:
            raise InvalidParameter(
                f"target region '{region.name}' is listed twice; list each region once",
                target=target)
        seen.add(key)
    if seen and rules.normalise_region(body.location) not in seen:
        raise InvalidParameter(
            f"publishingProfile.targetRegions must include the version's own location "
            f"'{body.location}' (its source region); add it, or leave targetRegions empty to "
            "replicate there only", target=REGIONS_TARGET)
    source = body.properties.storage_profile.get("source")
    if source is not None and (not isinstance(source, dict) or not (
            isinstance(source.get("path"), str) ^ isinstance(source.get("uri"), str))):
        raise InvalidParameter(
            "properties.storageProfile.source must be {\"path\": \"<directory or .tar.gz on "
            "the server>\"} or {\"uri\": \"<http(s):// or file:// URL of a .tar.gz>\"}; "
            "managed images and VM sources (source.id) are not supported here",
            target=SOURCE_TARGET)
    existing = tx.get_resource(f"{definition.body['id']}/versions/{name}")
    return definition, existing


def changed_artifact(existing: ResourceRow, digest: str | None) -> Conflict | None:
    """The 409 for a PUT that would change a published version's files, else None."""
    before = artifact(existing)
    if (before or {}).get("digest") == digest:
        return None
    return Conflict(
        f"gallery image version '{existing.name}' is already published with artifact "
        f"{(before or {}).get('digest') or '(none: the base image)'}; a published version "
        "never changes: publish the new files as a new version", target=SOURCE_TARGET)


def put_version(store: Store, *, image: str, name: str, body: model.GalleryImageVersion,
                artifact_record: Mapping[str, Any] | None, source: Mapping[str, Any] | None,
                now: datetime) -> tuple[ResourceRow, bool]:
    """Create a version, or update its publishing profile; (row, created).

    ``artifact_record`` / ``source``: what the API ingested for this PUT (None when
    the body named no new source: an existing version keeps its artifact). A
    published version's artifact never changes (409); its target regions,
    ``excludeFromLatest`` and ``endOfLifeDate`` may. New target regions (and
    failed ones) start replicating now; the replicator takes it from there.
    """
    with store.transaction(write=True) as tx:
        definition, existing = check_version(tx, image=image, name=name, body=body)
        tx.get_resource(definition.id, for_update=True)  # a concurrent delete waits for us
        if existing is not None and artifact_record is not None:
            refused = changed_artifact(existing, str(artifact_record.get("digest") or "")
                                       or None)
            if refused is not None:
                raise refused
        def_props = definition.body.get("properties") or {}
        record = artifact_record if existing is None else artifact(existing)
        if record is not None and record.get("osType") not in (None, def_props.get("osType")):
            raise InvalidParameter(
                f"the image's image.json says osType '{record.get('osType')}' but image "
                f"definition '{definition.name}' is {def_props.get('osType')}; publish it under "
                "a definition of that OS type", target=SOURCE_TARGET)
        profile = body.properties.publishing_profile
        wire_profile = profile.to_wire()
        wire_profile["targetRegions"] = target_regions(body)
        if profile.end_of_life_date is not None:
            wire_profile["endOfLifeDate"] = _iso(profile.end_of_life_date)
        published = ((existing.body.get("properties") or {}).get("publishingProfile") or {}
                     ).get("publishedDate") if existing else None
        wire_profile["publishedDate"] = published or _iso(now)
        if existing is not None:
            storage = dict((existing.body.get("properties") or {}).get("storageProfile") or {})
        else:
            storage = dict(body.properties.storage_profile)
            if source is not None:
                storage["source"] = dict(source)
        extra = {k: v for k, v in body.properties.to_wire().items()
                 if k not in ("publishingProfile", "storageProfile", ARTIFACT)}
        props = {**extra, "publishingProfile": wire_profile, "storageProfile": storage}
        key = f"{definition.body['id']}/versions/{name}"
        wire: dict[str, Any] = {"id": str(existing.body["id"]) if existing else key,
                                "name": name, "type": rules.VERSION_TYPE,
                                "location": body.location, "properties": props}
        if body.tags is not None:
            wire["tags"] = body.tags
        before = regions(existing) if existing else []
        after = rules.follow_targets(before, [r["name"] for r in wire_profile["targetRegions"]],
                                     now)
        state: dict[str, Any] = dict(existing.state) if existing else {}
        if existing is None:
            if artifact_record is not None:
                state[ARTIFACT] = dict(artifact_record)
            if source is not None:
                state["source"] = dict(source)
            state["pending"] = "Creating"
        elif any(r.state == rules.REPLICATING and r not in before for r in after):
            state["pending"] = "Updating"
        state["regions"] = [r.to_json() for r in after]
        row = ResourceRow(id=key, type=rules.VERSION_TYPE, parent_id=definition.id,
                          subscription=definition.subscription,
                          resource_group=definition.resource_group, name=name,
                          location=body.location, body=wire, state=state,
                          created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def pinning_scale_sets(tx: Tx, version_id: str) -> list[str]:
    """Names of the scale sets whose ``imageReference.id`` pins this version."""
    names = []
    for row in tx.scale_sets_naming_image_ids("/versions/"):  # those pinning any version
        ref = rules.parse_image_id(row.model.image_reference.id)
        if ref is not None and ref.version is not None \
                and ref.version_id(ref.version).lower() == version_id.lower():
            names.append(row.name)
    return names


def delete_version(store: Store, resource_id: str) -> bool:
    """Delete a version (refused while a scale set pins it); False when absent."""
    with store.transaction(write=True) as tx:
        row = tx.get_resource(resource_id, for_update=True)
        if row is None:
            return False
        pinned_by = pinning_scale_sets(tx, row.id)
        if pinned_by:
            raise OperationNotAllowed(
                f"gallery image version '{row.name}' is pinned by scale set(s) "
                f"{', '.join(repr(n) for n in pinned_by)} (imageReference.id names it); point "
                "them at another version, or at the image definition for 'latest', first")
        return tx.delete_resource(row.id)


def listing(store: Store, resource_type: str, *, subscription: str | None = None,
            resource_group: str | None = None, parent_id: str | None = None
            ) -> Sequence[dict[str, Any]]:
    """Resources of one type as GET shows them, by id."""
    with store.transaction() as tx:
        rows = tx.resources(resource_type, subscription=subscription,
                            resource_group=resource_group, parent_id=parent_id)
    return [view(r) for r in rows]
