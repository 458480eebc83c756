"""``Microsoft.Compute/virtualMachineScaleSets``: create, read, update, delete, list, views."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from scaleset.api import auth, lro, paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.direct import DirectRoute, resolved_by
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
from scaleset.store.repository import ScaleSetRow, Tx

# DirectRoute: the GET takes its arguments from the request by hand (api/direct.py).
router = APIRouter(tags=["virtualMachineScaleSets"], route_class=DirectRoute)

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


async def _get_direct(request: Request) -> Response:
    """``get`` with what FastAPI's solver would pass it (three path strings, then
    ``_versioned_reader`` with the api-version query value), taken from the request."""
    path = request.path_params
    caller = await _versioned_reader(request, request.query_params.get("api-version"))
    return await get(path["subscription"], path["resource_group"], path["name"], caller)


@router.get(SCALE_SET, responses={200: {"model": ScaleSet}})
@resolved_by(_get_direct)
async def get(subscription: str, resource_group: str, name: str,
              caller: auth.Credential = Depends(_versioned_reader)) -> Response:
    """The scale set, with ``provisioningState`` from its row.

    One transaction (the token's check, the row's head with its provisioning mark). The
    answer is rendered once per head and state and kept: the model is validated and
    serialised only when the row changed. Async: on SQLite an answer kept for the head is
    found on the event loop (``auth.reads_on_loop``: primary-key reads no writer delays),
    and only what may take longer hops to the thread pool, in the same transaction:
    rendering, deriving the state of a PUT still marked, any write. Elsewhere (PostgreSQL)
    the whole read is one hop.
    """
    key = scale_set_key(subscription, resource_group, name)
    context = caller.context
    if auth.reads_on_loop(context.store):
        with caller.checked() as tx:
            head, kept = _head(context, tx, key, resource_group, name)
            answer = (kept, head.etag, None) if kept is not None else await run_in_threadpool(
                _render, context, tx, key, head, resource_group, name)
    else:
        answer = await run_in_threadpool(_read, caller, key, resource_group, name)
    body, etag, finished = answer
    if finished is not None or caller.rekey_pending:
        await run_in_threadpool(_after, caller, key, finished)
    return Response(body, media_type="application/json", headers={"ETag": etag})


def _read(caller: auth.Credential, key: str, resource_group: str, name: str
          ) -> tuple[bytes, str, str | None]:
    """The GET's transaction on a thread: (the answer, its ETag, a PUT seen finished)."""
    with caller.checked() as tx:
        head, kept = _head(caller.context, tx, key, resource_group, name)
        if kept is not None:
            return kept, head.etag, None
        return _render(caller.context, tx, key, head, resource_group, name)


def _after(caller: auth.Credential, key: str, finished: str | None) -> None:
    """The GET's writes, once its transaction ended: a legacy token row re-keyed, a PUT
    this read saw finished written back."""
    caller.rekey()
    if finished is not None:
        lro.settle(caller.context, key, finished)


def _head(context: ApiContext, tx: Tx, key: str, resource_group: str, name: str
          ) -> tuple[operations.ScaleSetHead, bytes | None]:
    """The scale set's head (404 without one) and the answer kept for it, if any; none is
    looked up while a PUT is marked in progress (its state must be derived first)."""
    head = operations.scale_set_head(tx, key)
    if head is None:
        raise scale_set_not_found(resource_group, name)
    if head.provisioning_operation is not None:
        return head, None
    return head, context.scale_set_bodies.get(_answer_key(key, head, None), at=0.0)


def _answer_key(key: str, head: operations.ScaleSetHead, state: str | None) -> Hashable:
    # Keyed by a digest of the stored model (it may hold 64 KB of custom data), and
    # everything else the answer is rendered from.
    return (key, hashlib.blake2b(head.model_text.encode(), digest_size=16).digest(),
            head.etag, head.image_version, head.name, head.created_at, state)


def _render(context: ApiContext, tx: Tx, key: str, head: operations.ScaleSetHead,
            resource_group: str, name: str) -> tuple[bytes, str, str | None]:
    """(the answer, its ETag, the id of a PUT this read saw finished) for ``head``, read in
    ``tx``: the provisioning state derived while a PUT is marked, the answer rendered
    unless one is kept for this head and state (then kept)."""
    marked = (str(head.provisioning_state), head.provisioning_operation) \
        if head.provisioning_operation is not None else None
    state, finished = lro.provisioning_state(tx, key, marked) if marked else (None, None)
    cache_key = _answer_key(key, head, state)
    body = context.scale_set_bodies.get(cache_key, at=0.0)
    if body is not None:
        return body, head.etag, finished
    row = tx.get_scale_set(key)
    if row is None:  # deleted since its head was read (reads see each commit)
        raise scale_set_not_found(resource_group, name)
    body = bytes(JSONResponse(views.scale_set_resource(row, provisioning_state=state)).body)
    # Kept only when the row is the one the head described (no write in between).
    if (row.etag, row.image_version, row.name, row.created_at) == (
            head.etag, head.image_version, head.name, head.created_at):
        context.scale_set_bodies.put(cache_key, body, until=math.inf)
    return body, row.etag, finished


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
