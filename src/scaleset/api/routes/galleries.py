"""``Microsoft.Compute/galleries``: galleries, image definitions, image versions.

On the Gallery api-versions (up to 2026-03-03). Galleries and image
definitions answer synchronously: PUT 201 (created) or 200 (replaced) with
``provisioningState: Succeeded``, DELETE 200 (204 when absent). An image
version's PUT is a long-running operation that ends when its replication to
every target region has ended: 201/200 with ``provisioningState:
Creating|Updating`` and ``Azure-AsyncOperation``; GET shows the same state
meanwhile, and ``$expand=ReplicationStatus`` adds the per-region status.

A version's files come from ``properties.storageProfile.source`` — this
server's extension ``{"path": ...}`` or ``{"uri": ...}``, ingested like a
platform image version (checked, then stored by digest) — and never change
once published (409).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import lro, paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes import images as platform_images
from scaleset.api.routes.common import gallery_version
from scaleset.artifacts import ArtifactError, ImageManifest
from scaleset.catalog import gallery as rules
from scaleset.catalog import versions as version_rules
from scaleset.errors import Conflict, InvalidParameter
from scaleset.model.gallery import Gallery, GalleryImage, GalleryImageVersion
from scaleset.reconcile import galleries

router = APIRouter(tags=["galleries"])

PROVIDER = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
           "Microsoft.Compute"
GALLERIES = PROVIDER + "/galleries"
GALLERY = GALLERIES + "/{gallery}"
IMAGES = GALLERY + "/images"
IMAGE = IMAGES + "/{image}"
VERSIONS = IMAGE + "/versions"
VERSION = VERSIONS + "/{version}"
EXPANDS = {"replicationstatus": "ReplicationStatus", "uefisettings": "UefiSettings"}


def _gallery_id(subscription: str, resource_group: str, gallery: str) -> str:
    return galleries.gallery_id(subscription, resource_group, gallery)


def _image_id(subscription: str, resource_group: str, gallery: str, image: str) -> str:
    return f"{_gallery_id(subscription, resource_group, gallery)}/images/{image}"


def _version_id(subscription: str, resource_group: str, gallery: str, image: str,
                version: str) -> str:
    return f"{_image_id(subscription, resource_group, gallery, image)}/versions/{version}"


# -- galleries ------------------------------------------------------------------------------

@router.put(GALLERY, status_code=201)
def put_gallery(subscription: str, resource_group: str, gallery: str, body: Gallery,
                _v: str = Depends(gallery_version), _a: object = Depends(WRITE),
                context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Create a gallery, or replace its tags and properties (its location never changes)."""
    row, created = galleries.put_gallery(
        context.store, subscription=subscription, resource_group=resource_group, name=gallery,
        body=body, now=context.clock.now())
    return JSONResponse(galleries.view(row), status_code=201 if created else 200)


@router.get(GALLERY)
def get_gallery(subscription: str, resource_group: str, gallery: str,
                _v: str = Depends(gallery_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return galleries.view(galleries.load(
        context.store, _gallery_id(subscription, resource_group, gallery), "gallery"))


@router.delete(GALLERY, status_code=200, responses={204: {"description": "No such gallery"}})
def delete_gallery(subscription: str, resource_group: str, gallery: str,
                   _v: str = Depends(gallery_version), _a: object = Depends(WRITE),
                   context: ApiContext = Depends(request_context)) -> Response:
    """Delete a gallery (409 ``CannotDeleteResource`` while it holds image definitions)."""
    deleted = galleries.delete_gallery(context.store,
                                       _gallery_id(subscription, resource_group, gallery))
    return Response(status_code=200 if deleted else 204)


@router.get(GALLERIES)
def list_galleries(subscription: str, resource_group: str, request: Request,
                   _v: str = Depends(gallery_version), _a: object = Depends(READ),
                   context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    items = galleries.listing(context.store, rules.GALLERY_TYPE, subscription=subscription,
                              resource_group=resource_group)
    return paging.page(request, items, context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Compute/galleries")
def list_galleries_in_subscription(
        subscription: str, request: Request, _v: str = Depends(gallery_version),
        _a: object = Depends(READ), context: ApiContext = Depends(request_context)
) -> dict[str, Any]:
    items = galleries.listing(context.store, rules.GALLERY_TYPE, subscription=subscription)
    return paging.page(request, items, context.page_size)


# -- image definitions ----------------------------------------------------------------------

@router.put(IMAGE, status_code=201)
def put_image(subscription: str, resource_group: str, gallery: str, image: str,
              body: GalleryImage, _v: str = Depends(gallery_version),
              _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
              ) -> JSONResponse:
    """Create an image definition, or replace it (osType, osState, identifier are fixed)."""
    row, created = galleries.put_image(
        context.store, gallery=_gallery_id(subscription, resource_group, gallery), name=image,
        body=body, now=context.clock.now())
    return JSONResponse(galleries.view(row), status_code=201 if created else 200)


@router.get(IMAGE)
def get_image(subscription: str, resource_group: str, gallery: str, image: str,
              _v: str = Depends(gallery_version), _a: object = Depends(READ),
              context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return galleries.view(galleries.load(
        context.store, _image_id(subscription, resource_group, gallery, image),
        "gallery image definition"))


@router.delete(IMAGE, status_code=200,
               responses={204: {"description": "No such image definition"}})
def delete_image(subscription: str, resource_group: str, gallery: str, image: str,
                 _v: str = Depends(gallery_version), _a: object = Depends(WRITE),
                 context: ApiContext = Depends(request_context)) -> Response:
    """Delete an image definition (409 ``CannotDeleteResource`` while it has versions)."""
    deleted = galleries.delete_image(context.store,
                                     _image_id(subscription, resource_group, gallery, image))
    return Response(status_code=200 if deleted else 204)


@router.get(IMAGES)
def list_images(subscription: str, resource_group: str, gallery: str, request: Request,
                _v: str = Depends(gallery_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    parent = galleries.load(context.store, _gallery_id(subscription, resource_group, gallery),
                            "gallery")
    items = galleries.listing(context.store, rules.IMAGE_TYPE, parent_id=parent.id)
    return paging.page(request, items, context.page_size)


# -- image versions -------------------------------------------------------------------------

def _recorded(source: Any) -> dict[str, Any] | None:
    """A source as the server records it: a URI without its query (where a signature
    would be)."""
    if not isinstance(source, dict):
        return None
    if isinstance(source.get("uri"), str):
        parts = urllib.parse.urlsplit(source["uri"])
        return {"uri": urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "",
                                                ""))}
    return {"path": source["path"]} if isinstance(source.get("path"), str) else None


@router.put(VERSION, status_code=201,
            responses={200: {"description": "Updated; replication of new regions started"}})
def put_version(subscription: str, resource_group: str, gallery: str, image: str,
                version: str, request: Request, body: GalleryImageVersion,
                _v: str = Depends(gallery_version), _a: object = Depends(WRITE),
                context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Publish an image version, or change its publishing profile.

    The files (``properties.storageProfile.source``) are checked and stored
    before anything is recorded; a refused version stores nothing.
    """
    definition_id = _image_id(subscription, resource_group, gallery, image)
    with context.store.transaction() as tx:
        definition, existing = galleries.check_version(tx, image=definition_id, name=version,
                                                       body=body)
    source = _recorded(body.properties.storage_profile.get("source"))
    new_source = source is not None and (
        existing is None or source != existing.state.get("source"))
    record: dict[str, Any] | None = None
    if new_source and existing is not None and context.artifacts is None:
        # Without an artifact store the recorded source is all a version's files are.
        raise Conflict(
            f"gallery image version '{existing.name}' is already published from "
            f"{existing.state.get('source') or 'no source (the base image)'}; a published "
            "version never changes: publish other files as a new version",
            target=galleries.SOURCE_TARGET)
    if new_source and context.artifacts is not None:
        os_type = (definition.body.get("properties") or {}).get("osType")

        def acceptable(digest: str, manifest: ImageManifest) -> None:
            # Checked before the artifact is stored, so a refused version stores nothing.
            if existing is not None:
                refused = galleries.changed_artifact(existing, digest)
                if refused is not None:
                    raise refused
            if manifest.os_type != os_type:
                raise InvalidParameter(
                    f"the image's image.json says osType '{manifest.os_type}' but image "
                    f"definition '{definition.name}' is {os_type}; publish it under a "
                    "definition of that OS type", target=galleries.SOURCE_TARGET)

        raw = body.properties.storage_profile["source"]
        try:
            artifact = platform_images._ingest(context.artifacts, raw, accept=acceptable,
                                               context=context, target=galleries.SOURCE_TARGET)
        except ArtifactError as exc:
            exc.target = f"{galleries.SOURCE_TARGET}.{'path' if 'path' in raw else 'uri'}"
            raise
        record = {"digest": artifact.digest, "osType": artifact.manifest.os_type,
                  "entrypoint": list(artifact.manifest.entrypoint)}
    row, created = galleries.put_version(
        context.store, image=definition_id, name=version, body=body, artifact_record=record,
        source=source if new_source else None, now=context.clock.now())
    headers = lro.begin(context, request, kind=lro.GALLERY_IMAGE_VERSION_PUT,
                        resource_id=row.id, location=rules.normalise_region(row.location),
                        subscription=subscription)
    context.notify(None)  # the replicator starts on the next round; the trigger looks again
    return JSONResponse(galleries.view(row), status_code=201 if created else 200,
                        headers=headers)


@router.get(VERSION)
def get_version(subscription: str, resource_group: str, gallery: str, image: str,
                version: str,
                expand: str | None = Query(default=None, alias="$expand",
                                           description="ReplicationStatus or UefiSettings"),
                _v: str = Depends(gallery_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """An image version; ``$expand=ReplicationStatus`` adds its per-region replication."""
    if expand is not None and expand.lower() not in EXPANDS:
        raise InvalidParameter(f"$expand '{expand}' is not supported; use one of "
                               f"{', '.join(EXPANDS.values())}", target="$expand")
    row = galleries.load(context.store,
                         _version_id(subscription, resource_group, gallery, image, version),
                         "gallery image version")
    return galleries.view(row, expand_replication=(expand or "").lower() == "replicationstatus")


@router.delete(VERSION, status_code=200,
               responses={204: {"description": "No such image version"}})
def delete_version(subscription: str, resource_group: str, gallery: str, image: str,
                   version: str, _v: str = Depends(gallery_version),
                   _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                   ) -> Response:
    """Delete an image version (409 while a scale set pins it)."""
    deleted = galleries.delete_version(
        context.store, _version_id(subscription, resource_group, gallery, image, version))
    if deleted:
        context.notify(None)  # "latest" may have changed
    return Response(status_code=200 if deleted else 204)


@router.get(VERSIONS)
def list_versions(subscription: str, resource_group: str, gallery: str, image: str,
                  request: Request, _v: str = Depends(gallery_version),
                  _a: object = Depends(READ), context: ApiContext = Depends(request_context)
                  ) -> dict[str, Any]:
    parent = galleries.load(context.store,
                            _image_id(subscription, resource_group, gallery, image),
                            "gallery image definition")
    items = sorted(galleries.listing(context.store, rules.VERSION_TYPE, parent_id=parent.id),
                   key=lambda v: version_rules.version_key(str(v["name"])))
    return paging.page(request, items, context.page_size)
