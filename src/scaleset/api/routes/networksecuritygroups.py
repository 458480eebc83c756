"""``Microsoft.Network/networkSecurityGroups`` and their security rules.

Synchronous: PUT 201/200 (rules validated; the default rules added), GET,
PATCH (tags), DELETE 200 (204 when absent; 400
``InUseNetworkSecurityGroupCannotBeDeleted`` while a scale set names it),
lists per group and subscription; security rules (and the default ones) can
be read one by one and listed. Rules change by PUTting the whole group.
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
from scaleset.errors import NotFound
from scaleset.model.securitygroup import SECURITY_GROUP_TYPE, NetworkSecurityGroup
from scaleset.reconcile import securitygroups
from scaleset.reconcile.virtualnetworks import etag

router = APIRouter(tags=["networkSecurityGroups"])

GROUPS = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
         "Microsoft.Network/networkSecurityGroups"
GROUP = GROUPS + "/{name}"


def _respond(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"ETag": str(body.get("etag") or "")})


@router.put(GROUP, status_code=201, responses={200: {"model": NetworkSecurityGroup},
                                               201: {"model": NetworkSecurityGroup}})
def create_or_update(subscription: str, resource_group: str, name: str, request: Request,
                     body: NetworkSecurityGroup, _v: str = Depends(network_version),
                     _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                     ) -> JSONResponse:
    # The preconditions are checked in the write's transaction, on the locked row.
    row, created = retry_lost_race(lambda: securitygroups.put_group(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now(),
        check=lambda etag: check_preconditions(request, etag)))
    return _respond(dict(row.body), 201 if created else 200)


@router.get(GROUP, responses={200: {"model": NetworkSecurityGroup}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(network_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    with context.store.transaction() as tx:
        return _respond(dict(securitygroups.load(tx, subscription, resource_group, name).body))


@router.patch(GROUP, responses={200: {"model": NetworkSecurityGroup}})
def update_tags(subscription: str, resource_group: str, name: str,
                body: Any = Body(default=None), _v: str = Depends(network_version),
                _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                ) -> JSONResponse:
    tags = tags_of(body)
    now = context.clock.now()
    with context.store.transaction() as tx:
        row = securitygroups.load(tx, subscription, resource_group, name)
        updated = {k: v for k, v in row.body.items() if k not in ("tags", "etag")}
        if tags is not None:
            updated["tags"] = tags
        updated["etag"] = etag(row.id, updated, now)
        tx.put_resource(row.replace(body=updated, updated_at=now))
    return _respond(updated)


@router.delete(GROUP, status_code=200, responses={204: {"description": "No such group"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(network_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    deleted = securitygroups.delete_group(context.store, subscription=subscription,
                                          resource_group=resource_group, name=name,
                                          check=lambda etag: check_preconditions(request, etag))
    return Response(status_code=200 if deleted else 204)


def _list(context: ApiContext, subscription: str, resource_group: str | None
          ) -> list[dict[str, Any]]:
    with context.store.transaction() as tx:
        return [dict(r.body) for r in tx.resources(
            SECURITY_GROUP_TYPE, subscription=subscription, resource_group=resource_group)]


@router.get(GROUPS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(network_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, _list(context, subscription, resource_group),
                       context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Network/networkSecurityGroups")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(network_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return paging.page(request, _list(context, subscription, None), context.page_size)


def _rules(context: ApiContext, subscription: str, resource_group: str, name: str,
           collection: str) -> list[dict[str, Any]]:
    with context.store.transaction() as tx:
        row = securitygroups.load(tx, subscription, resource_group, name)
    return [{**r, "etag": row.body.get("etag")}
            for r in row.body.get("properties", {}).get(collection, [])]


for _collection in ("securityRules", "defaultSecurityRules"):
    def _make(collection: str) -> None:
        @router.get(GROUP + f"/{collection}", name=f"list_{collection}")
        def list_rules(subscription: str, resource_group: str, name: str, request: Request,
                       _v: str = Depends(network_version), _a: object = Depends(READ),
                       context: ApiContext = Depends(request_context)) -> dict[str, Any]:
            return paging.page(request, _rules(context, subscription, resource_group, name,
                                               collection), context.page_size)

        @router.get(GROUP + f"/{collection}/{{rule}}", name=f"get_{collection}")
        def get_rule(subscription: str, resource_group: str, name: str, rule: str,
                     _v: str = Depends(network_version), _a: object = Depends(READ),
                     context: ApiContext = Depends(request_context)) -> dict[str, Any]:
            found = next((r for r in _rules(context, subscription, resource_group, name,
                                            collection)
                          if str(r.get("name", "")).lower() == rule.lower()), None)
            if found is None:
                raise NotFound(f"Network security group '{name}' has no rule '{rule}'.",
                               code="NotFound")
            return found
    _make(_collection)
