"""``Microsoft.Network/virtualNetworks`` and their ``subnets``.

Synchronous, as the Network SDKs accept for these verbs: PUT answers 201
(created) or 200 (replaced) with ``provisioningState: Succeeded``; PATCH
replaces the tags (``UpdateTags``); DELETE answers 200, or 204 when there is
nothing to delete. Networks list per resource group and per subscription,
subnets per network. A subnet a scale set's ip configurations name cannot be
deleted (400 ``InUseSubnetCannotBeDeleted``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import check_preconditions, network_version, retry_lost_race
from scaleset.errors import InvalidParameter
from scaleset.model.resourcegroup import check_tags
from scaleset.model.virtualnetwork import Subnet, VirtualNetwork
from scaleset.reconcile import virtualnetworks

router = APIRouter(tags=["virtualNetworks"])

PROVIDER = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
           "Microsoft.Network"
NETWORKS = PROVIDER + "/virtualNetworks"
NETWORK = NETWORKS + "/{name}"
SUBNETS = NETWORK + "/subnets"
SUBNET = SUBNETS + "/{subnet}"


def _respond(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"ETag": str(body.get("etag") or "")})


def tags_of(body: Any) -> dict[str, str] | None:
    """The tags of an ``UpdateTags`` body (``{"tags": {...}}``), checked (400 if not)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object {\"tags\": {...}}",
                               target="body")
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
        raise InvalidParameter("tags must be an object of string names to string values",
                               target="tags")
    try:
        return check_tags(tags)
    except ValueError as exc:
        raise InvalidParameter(str(exc), target="tags") from None


@router.put(NETWORK, status_code=201,
            responses={200: {"model": VirtualNetwork}, 201: {"model": VirtualNetwork}})
def create_or_update(subscription: str, resource_group: str, name: str, request: Request,
                     body: VirtualNetwork, _v: str = Depends(network_version),
                     _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                     ) -> JSONResponse:
    """Create a virtual network or replace it, subnets included (those left out go)."""
    # The preconditions are checked in the write's transaction, on the locked row.
    row, created = retry_lost_race(lambda: virtualnetworks.put_vnet(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now(),
        check=lambda etag: check_preconditions(request, etag)))
    with context.store.transaction() as tx:
        shown = virtualnetworks.view(tx, row)
    return _respond(shown, 201 if created else 200)


@router.get(NETWORK, responses={200: {"model": VirtualNetwork}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(network_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    return _respond(virtualnetworks.get_vnet(context.store, subscription, resource_group, name))


_TAGS_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "TagsObject: {\"tags\": {...}}"}}}}}


@router.patch(NETWORK, openapi_extra=_TAGS_SCHEMA, responses={200: {"model": VirtualNetwork}})
def update_tags(subscription: str, resource_group: str, name: str, request: Request,
                body: Any = Body(default=None), _v: str = Depends(network_version),
                _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                ) -> JSONResponse:
    """Replace the network's tags (the only thing PATCH changes, as in ARM)."""
    tags = tags_of(body)
    row = virtualnetworks.patch_tags(context.store, subscription=subscription,
                                     resource_group=resource_group, name=name, tags=tags,
                                     now=context.clock.now(),
                                     check=lambda etag: check_preconditions(request, etag))
    with context.store.transaction() as tx:
        return _respond(virtualnetworks.view(tx, row))


@router.delete(NETWORK, status_code=200, responses={204: {"description": "No such network"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(network_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete a virtual network (400 while a scale set uses one of its subnets)."""
    deleted = virtualnetworks.delete_vnet(context.store, subscription=subscription,
                                          resource_group=resource_group, name=name,
                                          check=lambda etag: check_preconditions(request, etag))
    return Response(status_code=200 if deleted else 204)


@router.get(NETWORKS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(network_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, virtualnetworks.list_vnets(context.store, subscription,
                                                           resource_group), context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Network/virtualNetworks")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(network_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, virtualnetworks.list_vnets(context.store, subscription),
                       context.page_size)


@router.put(SUBNET, status_code=201, responses={200: {"model": Subnet}, 201: {"model": Subnet}})
def put_subnet(subscription: str, resource_group: str, name: str, subnet: str,
               body: Subnet, _v: str = Depends(network_version), _a: object = Depends(WRITE),
               context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Create or replace a subnet of an existing network (404 when the network is absent)."""
    shown, created = virtualnetworks.put_subnet(
        context.store, subscription=subscription, resource_group=resource_group, vnet=name,
        name=subnet, subnet=body, now=context.clock.now())
    return _respond(shown, 201 if created else 200)


@router.get(SUBNET, responses={200: {"model": Subnet}})
def get_subnet(subscription: str, resource_group: str, name: str, subnet: str,
               _v: str = Depends(network_version), _a: object = Depends(READ),
               context: ApiContext = Depends(request_context)) -> JSONResponse:
    return _respond(virtualnetworks.get_subnet(context.store, subscription, resource_group,
                                               name, subnet))


@router.delete(SUBNET, status_code=200, responses={204: {"description": "No such subnet"}})
def delete_subnet(subscription: str, resource_group: str, name: str, subnet: str,
                  _v: str = Depends(network_version), _a: object = Depends(WRITE),
                  context: ApiContext = Depends(request_context)) -> Response:
    """Delete a subnet (400 ``InUseSubnetCannotBeDeleted`` while a scale set uses it)."""
    deleted = virtualnetworks.delete_subnet(
        context.store, subscription=subscription, resource_group=resource_group, vnet=name,
        name=subnet, now=context.clock.now())
    return Response(status_code=200 if deleted else 204)


@router.get(SUBNETS)
def list_subnets(subscription: str, resource_group: str, name: str, request: Request,
                 _v: str = Depends(network_version), _a: object = Depends(READ),
                 context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, virtualnetworks.list_subnets(context.store, subscription,
                                                             resource_group, name),
                       context.page_size)
