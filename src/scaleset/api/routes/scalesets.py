"""``Microsoft.Compute/virtualMachineScaleSets``: create, read, update, delete, list, views."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import auth, lro, paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import (
    ACCEPTED,
    SCALE_SET,
    check_preconditions,
    compute_version,
    deep_merge,
    load_scale_set,
    scale_set_not_found,
    scale_set_display_id,
    scale_set_key,
)
from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, commands, quotas, views
from scaleset.security.tokens import Role
from scaleset.store import operations
from scaleset.store.repository import ScaleSetRow

router = APIRouter(tags=["virtualMachineScaleSets"])

READ_ONLY_PROPERTIES = ("provisioningState", "uniqueId", "timeCreated")


def _model_from(body: Any, *, display_id: str, name: str) -> ScaleSet:
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object (a scale set resource)",
                               target="body")
    data = dict(body)
    data["id"], data["name"] = display_id, name
    for key in ("etag", "type"):
        data.pop(key, None)
    props = data.get("properties")
    if isinstance(props, dict):
        data["properties"] = props = {k: v for k, v in props.items()
                                      if k not in READ_ONLY_PROPERTIES}
        # exactVersion is what "latest" resolved to (GET fills it in): read-only, as in ARM.
        ref = ((props.get("virtualMachineProfile") or {}).get("storageProfile") or {}).get(
            "imageReference")
        if isinstance(ref, dict) and "exactVersion" in ref:
            profile = dict(props["virtualMachineProfile"])
            storage = dict(profile["storageProfile"])
            storage["imageReference"] = {k: v for k, v in ref.items() if k != "exactVersion"}
            profile["storageProfile"] = storage
            props["virtualMachineProfile"] = profile
    if "location" not in data:
        raise InvalidParameter("Required parameter 'location' is missing (null).",
                               target="location")
    return ScaleSet.model_validate(data)


def _respond(row: ScaleSetRow, status: int, state: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(views.scale_set_resource(row, provisioning_state=state),
                        status_code=status, headers={**headers, "ETag": row.etag})


@router.put(SCALE_SET, status_code=201,
            responses={200: {"model": ScaleSet}, 201: {"model": ScaleSet}})
def create_or_update(
    subscription: str, resource_group: str, name: str, request: Request,
    body: ScaleSet, api_version: str = Depends(compute_version),
    _a: object = Depends(WRITE), context: ApiContext = Depends(request_context),
) -> JSONResponse:
    """Create a scale set, or replace its model (``If-Match`` / ``If-None-Match`` honoured)."""
    key = scale_set_key(subscription, resource_group, name)
    sent = body.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def build(existing: ScaleSetRow | None) -> ScaleSet:
        # Runs inside the write's transaction, on the row as stored (locked), so the
        # preconditions and the merge see what the write replaces.
        check_preconditions(request, existing.etag if existing else None)
        merged = sent
        if existing is not None:
            # As the Compute RP does: a PUT changes what it names and keeps what it leaves
            # out (az vmss scale PUTs only location and sku). null removes a field.
            merged = deep_merge(existing.model.model_dump(mode="json", by_alias=True,
                                                          exclude_unset=True, exclude_none=True),
                                sent)
        model = _model_from(merged, name=name,
                            display_id=scale_set_display_id(subscription, resource_group, name))
        quotas.check_room(model, existing.model if existing else None, context.settings.limits,
                          context.instance_room)
        return model

    row, created = commands.put_scale_set(context.store, scale_set_id=key, build=build,
                                          now=context.clock.now(), api_version=api_version,
                                          settings=context.settings)
    status, state = (201, "Creating") if created else (200, "Updating")
    headers = lro.begin(context, request, kind=lro.SCALE_SET_PUT, resource_id=row.model.id or key,
                        location=row.location, subscription=subscription, scale_set_id=key,
                        data={"created": created})
    context.notify(key)
    return _respond(row, status, state, headers)


_PATCH_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "description": "Any part of a scale set (VirtualMachineScaleSetUpdate); merged into the "
                   "model: objects key by key, lists replaced."}}}}}


@router.patch(SCALE_SET, openapi_extra=_PATCH_SCHEMA, responses={200: {"model": ScaleSet}})
def update(
    subscription: str, resource_group: str, name: str, request: Request,
    body: Any = Body(default=None), api_version: str = Depends(compute_version),
    _a: object = Depends(WRITE), context: ApiContext = Depends(request_context),
) -> JSONResponse:
    """Merge a partial scale set into the model (JSON merge: objects merge, lists replace)."""
    existing = load_scale_set(context.store, subscription, resource_group, name)  # 404 first

    def mutate(stored: ScaleSetRow) -> ScaleSet:
        # Inside the write's transaction, on the locked row: If-Match is checked against the
        # etag this write replaces, and the merge is over what is stored now, so concurrent
        # PATCHes neither both win one etag nor drop each other's changes.
        check_preconditions(request, stored.etag)
        if not isinstance(body, dict):
            raise InvalidParameter("the request body must be a JSON object", target="body")
        # Merge over what the client wrote (not over defaults), so "is it set" survives.
        merged = deep_merge(stored.model.model_dump(mode="json", by_alias=True,
                                                    exclude_unset=True, exclude_none=True), body)
        model = _model_from(merged, display_id=stored.model.id or stored.id, name=stored.name)
        quotas.check_room(model, stored.model, context.settings.limits, context.instance_room)
        return model

    row = commands.update_scale_set(context.store, scale_set_id=existing.id, mutate=mutate,
                                    now=context.clock.now(), api_version=api_version,
                                    settings=context.settings)
    headers = lro.begin(context, request, kind=lro.SCALE_SET_PUT, resource_id=row.model.id or "",
                        location=row.location, subscription=subscription,
                        scale_set_id=existing.id)
    context.notify(existing.id)
    return _respond(row, 200, "Updating", headers)


async def _versioned_reader(request: Request, api_version: str | None = Query(
        default=None, alias="api-version")) -> auth.Credential:
    """``compute_version`` then ``auth.read_in_tx``, in that order, as one dependency: one
    resolution less per request for the most frequent one."""
    await compute_version(request, api_version)
    return auth.credential(request, Role.READER)


@router.get(SCALE_SET, responses={200: {"model": ScaleSet}})
def get(subscription: str, resource_group: str, name: str,
        caller: auth.Credential = Depends(_versioned_reader)) -> Response:
    """The scale set, with ``provisioningState`` from its row.

    One transaction (the token's check, the row's head with its provisioning mark) and one
    thread-pool hop (this function). The answer is rendered once per head and state and
    kept: the model is validated and serialised only when the row changed.
    """
    key = scale_set_key(subscription, resource_group, name)
    context = caller.context
    with caller.transaction() as tx:
        head = operations.scale_set_head(tx, key)
        if head is None:
            raise scale_set_not_found(resource_group, name)
        marked = (str(head.provisioning_state), head.provisioning_operation) \
            if head.provisioning_operation is not None else None
        state, finished = lro.provisioning_state(tx, key, marked) if marked else (None, None)
        # Keyed by a digest of the stored model (it may hold 64 KB of custom data), and
        # everything else the answer is rendered from.
        cache_key = (key, hashlib.blake2b(head.model_text.encode(), digest_size=16).digest(),
                     head.etag, head.image_version, head.name, head.created_at, state)
        etag = head.etag
        body = context.scale_set_bodies.get(cache_key, at=0.0)
        if body is None:
            row = tx.get_scale_set(key)
            if row is None:  # deleted since its head was read (reads see each commit)
                raise scale_set_not_found(resource_group, name)
            body = bytes(JSONResponse(views.scale_set_resource(row, provisioning_state=state))
                         .body)
            etag = row.etag
            # Kept only when the row is the one the head described (no write in between).
            if (row.etag, row.image_version, row.name, row.created_at) == (
                    head.etag, head.image_version, head.name, head.created_at):
                context.scale_set_bodies.put(cache_key, body, until=math.inf)
    if finished is not None:  # this read saw the PUT finished: written back once
        lro.settle(context, key, finished)
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.delete(SCALE_SET, status_code=202,
               responses=ACCEPTED | {204: {"description": "No such scale set"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(compute_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete a scale set with its instances and their disks (204 when it does not exist)."""
    key = scale_set_key(subscription, resource_group, name)
    try:
        # If-Match is checked in the delete's transaction, against the row it marks.
        row = commands.delete_scale_set(
            context.store, scale_set_id=key, now=context.clock.now(),
            check=lambda stored: check_preconditions(request, stored.etag))
    except NotFound:
        return Response(status_code=204)
    headers = lro.begin(context, request, kind=lro.SCALE_SET_DELETE,
                        resource_id=row.model.id or key, location=row.location,
                        subscription=subscription, scale_set_id=key)
    context.notify(key)
    return Response(status_code=202, headers=headers)


def _list(context: ApiContext, prefix: str) -> list[dict[str, Any]]:
    with context.store.transaction() as tx:
        rows = tx.scale_sets_under(prefix)
    return [views.scale_set_resource(r) for r in rows]


@router.get("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            "Microsoft.Compute/virtualMachineScaleSets")
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(compute_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    prefix = f"/subscriptions/{subscription}/resourcegroups/{resource_group}/".lower()
    return paging.page(request, _list(context, prefix), context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Compute/virtualMachineScaleSets")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(compute_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    prefix = f"/subscriptions/{subscription}/".lower()
    return paging.page(request, _list(context, prefix), context.page_size)


@router.get(SCALE_SET + "/instanceView")
def instance_view(subscription: str, resource_group: str, name: str,
                  _v: str = Depends(compute_version),
                  caller: auth.Credential = Depends(auth.read_in_tx)) -> dict[str, Any]:
    context = caller.context
    with caller.transaction() as tx:  # one transaction: the token, the row, its instances
        row = tx.get_scale_set(scale_set_key(subscription, resource_group, name))
        if row is None:
            raise scale_set_not_found(resource_group, name)
        records = tx.instances(row.id)
        # An automatic OS upgrade that has not started (delayed, outside a maintenance
        # window, deferred for approval) shows as an OSUpgrade/... status.
        pending = automatic.pending_status(tx, row, records, context.clock.now(),
                                          context.settings)
    view = views.scale_set_instance_view(row, records)
    if pending is not None:
        view["statuses"].append(pending)
    return view
