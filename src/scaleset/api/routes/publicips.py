"""``Microsoft.Network/publicIPAddresses``: addresses for load-balancer frontends.

Synchronous: PUT 201/200 with ``provisioningState: Succeeded`` and the
address (from ``100.64.0.0/10``, see ``model/publicip.py``), GET, PATCH
(tags), DELETE 200 (204 when absent; 400 ``PublicIPAddressInUse`` while a
frontend uses it), lists per group and subscription.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import check_preconditions, network_version, retry_lost_race
from scaleset.api.routes.virtualnetworks import tags_of
from scaleset.model.publicip import PUBLIC_IP_TYPE, PublicIPAddress
from scaleset.reconcile import publicips
from scaleset.reconcile.virtualnetworks import etag

router = APIRouter(tags=["publicIPAddresses"])

ADDRESSES = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
            "Microsoft.Network/publicIPAddresses"
ADDRESS = ADDRESSES + "/{name}"


def _respond(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"ETag": str(body.get("etag") or "")})


@router.put(ADDRESS, status_code=201,
            responses={200: {"model": PublicIPAddress}, 201: {"model": PublicIPAddress}})
def create_or_update(subscription: str, resource_group: str, name: str, request: Request,
                     body: PublicIPAddress, _v: str = Depends(network_version),
                     _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                     ) -> JSONResponse:
    """Create a public IP (an address is chosen) or replace it (the address is kept)."""
    # The preconditions are checked in the write's transaction, on the locked row.
    row, created = retry_lost_race(lambda: publicips.put_public_ip(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now(),
        check=lambda etag: check_preconditions(request, etag)))
    with context.store.transaction() as tx:
        return _respond(publicips.view(tx, row), 201 if created else 200)


@router.get(ADDRESS, responses={200: {"model": PublicIPAddress}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(network_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    with context.store.transaction() as tx:
        return _respond(publicips.view(tx, publicips.load(tx, subscription, resource_group,
                                                          name)))


@router.patch(ADDRESS, responses={200: {"model": PublicIPAddress}})
def update_tags(subscription: str, resource_group: str, name: str,
                body: Any = Body(default=None), _v: str = Depends(network_version),
                _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                ) -> JSONResponse:
    """Replace the tags (``UpdateTags``)."""
    tags = tags_of(body)
    now = context.clock.now()
    with context.store.transaction(write=True) as tx:
        # Locked first, so a concurrent PATCH waits and then reads this one's result.
        tx.get_resource(publicips.public_ip_id(subscription, resource_group, name),
                        for_update=True)
        row = publicips.load(tx, subscription, resource_group, name)
        updated = {k: v for k, v in row.body.items() if k not in ("tags", "etag")}
        if tags is not None:
            updated["tags"] = tags
        updated["etag"] = etag(row.id, updated, now)
        stored = row.replace(body=updated, updated_at=now)
        tx.put_resource(stored)
        return _respond(publicips.view(tx, stored))


@router.delete(ADDRESS, status_code=200, responses={204: {"description": "No such address"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(network_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    deleted = publicips.delete_public_ip(context.store, subscription=subscription,
                                         resource_group=resource_group, name=name,
                                         check=lambda etag: check_preconditions(request, etag))
    return Response(status_code=200 if deleted else 204)


def _list(context: ApiContext, subscription: str, resource_group: str | None
          ) -> list[dict[str, Any]]:
    with context.store.transaction() as tx:
        return [publicips.view(tx, r) for r in tx.resources(
            PUBLIC_IP_TYPE, subscription=subscription, resource_group=resource_group)]


@router.get(ADDRESSES)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(network_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, _list(context, subscription, resource_group),
                       context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Network/publicIPAddresses")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(network_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, _list(context, subscription, None), context.page_size)
