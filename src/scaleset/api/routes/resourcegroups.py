"""``Microsoft.Resources/resourceGroups`` and the resources in them.

PUT answers 201 (created) or 200 (updated) with the group; GET, HEAD (204 when
the group exists, 404 when not: ``az group exists``), PATCH (tags, managedBy),
and the subscription's list, filtered by tag (``$filter=tagName eq 'k' and
tagValue eq 'v'``, what ``az group list --tag`` sends). DELETE is a
long-running operation (202, ``Azure-AsyncOperation`` + ``Location``) that
removes everything in the group; it succeeds when the group's last scale set
is gone. ``.../resourceGroups/{rg}/resources`` and ``/subscriptions/{id}/resources``
list what a group or subscription holds (``az resource list``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import filters, lro, paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import ACCEPTED, resources_version, retry_lost_race
from scaleset.errors import InvalidParameter
from scaleset.model.resourcegroup import ResourceGroup
from scaleset.reconcile import resourcegroups, views
from scaleset.store.repository import ResourceRow

router = APIRouter(tags=["resourceGroups"])

GROUPS = "/subscriptions/{subscription}/resourceGroups"
GROUP = GROUPS + "/{name}"
EXPANDABLE = frozenset({"createdtime", "changedtime", "provisioningstate"})


def _respond(row: ResourceRow, status: int = 200) -> JSONResponse:
    return JSONResponse(dict(row.body), status_code=status)


@router.put(GROUP, status_code=201, responses={200: {"model": ResourceGroup},
                                               201: {"model": ResourceGroup}})
def create_or_update(subscription: str, name: str, body: ResourceGroup,
                     _v: str = Depends(resources_version), _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Create a resource group, or replace its tags and managedBy (the location is fixed)."""
    # A create that lost the insert race to an equal one runs again, as an update.
    row, created = retry_lost_race(lambda: resourcegroups.put_group(
        context.store, subscription=subscription, name=name, model=body,
        now=context.clock.now()))
    return _respond(row, 201 if created else 200)


@router.get(GROUP, responses={200: {"model": ResourceGroup}})
def get(subscription: str, name: str, _v: str = Depends(resources_version),
        _a: object = Depends(READ), context: ApiContext = Depends(request_context)
        ) -> JSONResponse:
    return _respond(resourcegroups.get_group(context.store, subscription, name))


@router.head(GROUP, status_code=204, responses={404: {"description": "No such group"}})
def exists(subscription: str, name: str, _v: str = Depends(resources_version),
           _a: object = Depends(READ), context: ApiContext = Depends(request_context)
           ) -> Response:
    """204 when the group exists, 404 (no body, as for any HEAD) when it does not."""
    with context.store.transaction() as tx:
        found = resourcegroups.visible_group(tx, subscription, name)
    return Response(status_code=204 if found is not None else 404)


_PATCH_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "ResourceGroupPatchable: tags and/or managedBy"}}}}}


@router.patch(GROUP, openapi_extra=_PATCH_SCHEMA, responses={200: {"model": ResourceGroup}})
def update(subscription: str, name: str, body: Any = Body(default=None),
           _v: str = Depends(resources_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Change a group's tags or managedBy (``az group update``)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object (ResourceGroupPatchable)",
                               target="body")
    row = resourcegroups.patch_group(context.store, subscription=subscription, name=name,
                                     patch=body, now=context.clock.now())
    return _respond(row)


@router.delete(GROUP, status_code=202, responses=ACCEPTED)
def delete(subscription: str, name: str, request: Request,
           _force: str | None = Query(default=None, alias="forceDeletionTypes"),
           _v: str = Depends(resources_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete a group and everything in it (404 ``ResourceGroupNotFound`` when absent).

    ``forceDeletionTypes`` is accepted: scale sets are always deleted without waiting
    for their instances to shut down gracefully."""
    row = resourcegroups.delete_group(context.store, subscription=subscription, name=name,
                                      now=context.clock.now())
    if row is None:
        raise resourcegroups.not_found(name)
    headers = lro.begin(context, request, kind=lro.RESOURCE_GROUP_DELETE,
                        resource_id=row.id, location=row.location, subscription=subscription,
                        data={"subscription": subscription, "name": row.name})
    context.notify(None)  # the reconciler removes the scale sets' instances
    return Response(status_code=202, headers=headers)


@router.get(GROUPS)
def list_groups(subscription: str, request: Request,
                filter_text: str | None = Query(default=None, alias="$filter"),
                _v: str = Depends(resources_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """The subscription's resource groups; ``$filter`` by tag (and name, location)."""
    clauses = filters.parse(filter_text)
    bodies = [dict(r.body) for r in resourcegroups.list_groups(context.store, subscription)]
    chosen = [b for b in bodies if filters.matches(clauses, b, str(b.get("name", "")))]
    return paging.page(request, chosen, context.page_size)


def _expand(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset()
    asked = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = sorted(asked - EXPANDABLE)
    if unknown:
        raise InvalidParameter(
            f"$expand '{unknown[0]}' is not supported; use createdTime, changedTime or "
            "provisioningState (comma-separated)", target="$expand")
    return asked


def _resources(context: ApiContext, request: Request, subscription: str,
               resource_group: str | None, filter_text: str | None,
               expand_text: str | None) -> dict[str, Any]:
    clauses = filters.parse(filter_text)
    found = resourcegroups.resources(context.store, subscription, resource_group,
                                     expand=_expand(expand_text),
                                     scale_set_view=views.scale_set_resource)
    chosen = [body for group, body in found if filters.matches(clauses, body, group)]
    return paging.page(request, chosen, context.page_size)


@router.get(GROUP + "/resources")
def list_in_group(subscription: str, name: str, request: Request,
                  filter_text: str | None = Query(default=None, alias="$filter"),
                  expand_text: str | None = Query(default=None, alias="$expand"),
                  _v: str = Depends(resources_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """What a resource group holds (404 ``ResourceGroupNotFound`` for an unknown group)."""
    resourcegroups.get_group(context.store, subscription, name)
    return _resources(context, request, subscription, name, filter_text, expand_text)


@router.get("/subscriptions/{subscription}/resources")
def list_in_subscription(subscription: str, request: Request,
                         filter_text: str | None = Query(default=None, alias="$filter"),
                         expand_text: str | None = Query(default=None, alias="$expand"),
                         _v: str = Depends(resources_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """What a subscription holds; ``az resource list -g`` asks here with
    ``$filter=resourceGroup eq '...'``."""
    return _resources(context, request, subscription, None, filter_text, expand_text)
