"""Platform images per location: publishers -> offers -> skus -> versions.

Listings are bare JSON arrays, as ARM returns them. Versions order as
dotted integers (1.10.0 after 1.9.0). Publishing a version is a PUT on the
version's path (contributor); it may start Platform runs on every scale set
that asked for ``latest`` of that sku.
"""

from __future__ import annotations

from collections.abc import Callable
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from fastapi.responses import JSONResponse
from sqlalchemy import select

from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import compute_version
from scaleset.catalog import auto_upgrade
from scaleset.catalog import versions as version_rules
from scaleset.artifacts import (ArchiveLimits, Artifact, ArtifactError, ArtifactStore,
                                ImageManifest, SourceRules, fetch)
from scaleset.errors import Conflict, InvalidParameter, NotFound
from scaleset.model.base import ArmModel
from scaleset.reconcile import commands, images
from scaleset.store import tables as t
from scaleset.store.repository import ImageVersionRow

router = APIRouter(tags=["virtualMachineImages"])

LOCATION = "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}"
PUBLISHERS = LOCATION + "/publishers"
OFFERS = PUBLISHERS + "/{publisher}/artifacttypes/vmimage/offers"
SKUS = OFFERS + "/{offer}/skus"
VERSIONS = SKUS + "/{sku}/versions"
VERSION = VERSIONS + "/{version}"


def source_rules(context: ApiContext, artifacts: ArtifactStore) -> SourceRules:
    """What a source may reach on this server: the operator's roots and address rule,
    never the data directory, downloads bounded by the archive limit."""
    return SourceRules(roots=context.settings.sources.roots,
                       protected=(artifacts.root, artifacts.data_dir),
                       allow_private=context.settings.sources.allow_private,
                       max_bytes=context.settings.limits.max_image_archive_bytes)


def archive_limits(context: ApiContext) -> ArchiveLimits:
    """The server's limits on an image source, as the artifact store takes them."""
    limits = context.settings.limits
    return ArchiveLimits(archive_bytes=limits.max_image_archive_bytes,
                         expanded_bytes=limits.max_image_expanded_bytes,
                         files=limits.max_image_files)


def _ingest(artifacts: ArtifactStore, source: dict[str, Any],
            accept: Callable[[str, ImageManifest], None] | None = None, *,
            context: ApiContext, target: str = "properties.source") -> Artifact:
    """Check and store the image at ``source`` (``{"path"}`` or ``{"uri"}``) under the
    server's rules; a refusal names ``target.path`` or ``target.uri``."""
    field = f"{target}.{'path' if 'path' in source else 'uri'}"
    rules = source_rules(context, artifacts)
    limits = archive_limits(context)
    try:
        if "path" in source:
            path = rules.check_path(Path(source["path"]), what=field)
            return artifacts.ingest(path, accept=accept, limits=limits)
        with fetch.fetched(source["uri"], artifacts.root / ".tmp", rules, what=field) as path:
            return artifacts.ingest(path, accept=accept, limits=limits)
    except ArtifactError as exc:
        exc.target = field
        raise


def _display(row: ImageVersionRow, key: str) -> str:
    names = row.properties.get("displayNames") or {}
    return str(names.get(key) or getattr(row, key))


def _rows(context: ApiContext, location: str, **match: str) -> list[ImageVersionRow]:
    c = t.image_versions.c
    query = select(t.image_versions).where(c.location == location.lower())
    for key, value in match.items():
        query = query.where(c[key] == value.lower())
    with context.store.transaction() as tx:
        return [ImageVersionRow(r.location, r.publisher, r.offer, r.sku, r.version, r.os_type,
                                r.properties, r.published_at)
                for r in tx.conn.execute(query)]


def _resource(subscription: str, location: str, name: str, path: str) -> dict[str, Any]:
    return {"name": name, "location": location,
            "id": f"/Subscriptions/{subscription}/Providers/Microsoft.Compute/Locations/"
                  f"{location}{path}"}


def _names(rows: list[ImageVersionRow], key: str) -> list[str]:
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(getattr(row, key), _display(row, key))
    return sorted(seen.values(), key=str.lower)


@router.get(PUBLISHERS)
def list_publishers(subscription: str, location: str, _v: str = Depends(compute_version),
                    _a: object = Depends(READ),
                    context: ApiContext = Depends(request_context)) -> list[dict[str, Any]]:
    return [_resource(subscription, location, p, f"/Publishers/{p}")
            for p in _names(_rows(context, location), "publisher")]


@router.get(OFFERS)
def list_offers(subscription: str, location: str, publisher: str,
                _v: str = Depends(compute_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> list[dict[str, Any]]:
    rows = _rows(context, location, publisher=publisher)
    return [_resource(subscription, location, o,
                      f"/Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{o}")
            for o in _names(rows, "offer")]


@router.get(SKUS)
def list_skus(subscription: str, location: str, publisher: str, offer: str,
              _v: str = Depends(compute_version), _a: object = Depends(READ),
              context: ApiContext = Depends(request_context)) -> list[dict[str, Any]]:
    rows = _rows(context, location, publisher=publisher, offer=offer)
    return [_resource(subscription, location, s,
                      f"/Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{s}")
            for s in _names(rows, "sku")]


def _version_path(publisher: str, offer: str, sku: str, version: str) -> str:
    return (f"/Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/"
            f"Versions/{version}")


@router.get(VERSIONS)
def list_versions(subscription: str, location: str, publisher: str, offer: str, sku: str,
                  top: int | None = Query(default=None, alias="$top", ge=1),
                  orderby: str | None = Query(default=None, alias="$orderby"),
                  _v: str = Depends(compute_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> list[dict[str, Any]]:
    """Versions of a sku, oldest first (``$orderby=name desc`` for newest first, ``$top``)."""
    rows = _rows(context, location, publisher=publisher, offer=offer, sku=sku)
    ordered = sorted(rows, key=lambda r: version_rules.version_key(r.version))
    if orderby is not None:
        words = orderby.lower().split()
        if not words or words[0] != "name" or words[1:] not in ([], ["asc"], ["desc"]):
            raise InvalidParameter(f"$orderby '{orderby}' is not supported; use 'name asc' or "
                                   "'name desc'", target="$orderby")
        if words[1:] == ["desc"]:
            ordered.reverse()
    if top is not None:
        ordered = ordered[:top]
    return [_resource(subscription, location, r.version,
                      _version_path(publisher, offer, sku, r.version)) for r in ordered]


def _image(context: ApiContext, subscription: str, location: str, publisher: str, offer: str,
           sku: str, row: ImageVersionRow) -> dict[str, Any]:
    body = _resource(subscription, location, row.version,
                     _version_path(publisher, offer, sku, row.version))
    props = {k: v for k, v in row.properties.items() if k != "displayNames"}
    props.setdefault("osDiskImage", {"operatingSystem": row.os_type})
    props.setdefault("dataDiskImages", [])
    # The server's allow-list decides, whatever the version was published with.
    props["automaticOSUpgradeProperties"] = {"automaticOSUpgradeSupported": auto_upgrade.allows(
        context.settings.auto_upgrade_images, publisher, offer, sku)}
    body["properties"] = props
    return body


@router.get(VERSION)
def get_version(subscription: str, location: str, publisher: str, offer: str, sku: str,
                version: str, _v: str = Depends(compute_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    for row in _rows(context, location, publisher=publisher, offer=offer, sku=sku):
        if row.version == version:
            return _image(context, subscription, location, publisher, offer, sku, row)
    raise NotFound(f"Artifact: VMImage was not found: {publisher}/{offer}/{sku}/{version} in "
                   f"'{location}'.", code="NotFound")


def _changed(publisher: str, offer: str, sku: str, version: str, row: ImageVersionRow
             ) -> Conflict:
    return Conflict(
        f"image version {publisher}/{offer}/{sku}/{version} is already published with "
        f"artifact {images.artifact_digest(row.properties)}; a published version never "
        "changes: publish the new files as a new version", target="version")


class ImageVersionBody(ArmModel):
    """A platform image version to publish."""

    location: str
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description='e.g. {"osDiskImage": {"operatingSystem": "Linux"}, "source": {"path": '
                    '"..."}, "simulation": {"healthy": false}}')


@router.put(VERSION, status_code=201)
def publish_version(subscription: str, location: str, publisher: str, offer: str, sku: str,
                    version: str, body: ImageVersionBody,
                    _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                    context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Publish a platform image version (an admin operation of this control plane).

    With ``properties.source.path`` (a directory or ``.tar.gz`` on the server's
    machine) the image's files are checked and copied into the artifact store,
    and ``properties.artifact`` records their digest, OS type and entrypoint.
    """
    props = dict(body.properties)
    os_disk = props.get("osDiskImage") or {}
    if not isinstance(os_disk, dict):
        raise InvalidParameter("properties.osDiskImage must be an object",
                               target="properties.osDiskImage")
    os_type = os_disk.get("operatingSystem")
    if os_type is not None and os_type not in ("Linux", "Windows"):
        raise InvalidParameter(f"osDiskImage.operatingSystem must be Linux or Windows, not "
                               f"'{os_type}'", target="properties.osDiskImage.operatingSystem")
    source = props.get("source")
    if source is not None and (not isinstance(source, dict) or not (
            isinstance(source.get("path"), str) ^ isinstance(source.get("uri"), str))):
        raise InvalidParameter("properties.source must be {\"path\": \"<directory or .tar.gz "
                               "on the server>\"} or {\"uri\": \"<http(s):// or file:// URL "
                               "of a .tar.gz>\"}", target="properties.source")
    if source is not None and context.artifacts is not None:
        def acceptable(digest: str, manifest: ImageManifest) -> None:
            # Checked before the artifact is stored, so a refused version stores nothing.
            if os_type is not None and os_type != manifest.os_type:
                raise InvalidParameter(
                    f"osDiskImage.operatingSystem is '{os_type}' but the image's image.json "
                    f"says osType '{manifest.os_type}'; leave operatingSystem out or make "
                    "them agree", target="properties.osDiskImage.operatingSystem")
            for row in _rows(context, location, publisher=publisher, offer=offer, sku=sku):
                if row.version == version and images.artifact_digest(row.properties) not in (
                        None, digest):
                    raise _changed(publisher, offer, sku, version, row)

        artifact = _ingest(context.artifacts, source, accept=acceptable, context=context)
        if "uri" in source:  # kept for the record, without a signature in its query
            parts = urllib.parse.urlsplit(source["uri"])
            props["source"] = {"uri": urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, parts.path, "", ""))}
        manifest_os = artifact.manifest.os_type
        os_type = manifest_os
        props["osDiskImage"] = {**os_disk, "operatingSystem": os_type}
        props[images.ARTIFACT] = {"digest": artifact.digest, "osType": manifest_os,
                                  "entrypoint": list(artifact.manifest.entrypoint)}
    os_type = os_type or "Linux"
    for row in _rows(context, location, publisher=publisher, offer=offer, sku=sku):
        if row.version == version and images.artifact_digest(row.properties) not in (
                None, images.artifact_digest(props)):
            raise _changed(publisher, offer, sku, version, row)
    existed = any(r.version == version for r in _rows(context, location, publisher=publisher,
                                                      offer=offer, sku=sku))
    row = commands.publish_image_version(
        context.store, location=location, publisher=publisher, offer=offer, sku=sku,
        version=version, os_type=os_type,
        properties=props,
        now=context.clock.now())
    context.on_image_published(row)
    context.notify(None)
    return JSONResponse(_image(context, subscription, location, publisher, offer, sku, row),
                        status_code=200 if existed else 201)
