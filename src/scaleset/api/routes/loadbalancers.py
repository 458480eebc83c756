"""``Microsoft.Network/loadBalancers``: a minimal load balancer, there for its health probes.

Synchronous, as the Network SDK accepts for these verbs: PUT answers 201
(created) or 200 (replaced) with ``provisioningState: Succeeded``; DELETE 200,
or 204 when there is nothing to delete. Probes are changed by PUTting the
whole load balancer (as in ARM); they can be read on their own. A load
balancer or probe that a scale set's ``healthProbe`` names cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, get_context
from scaleset.api.routes.common import check_preconditions, network_version
from scaleset.errors import NotFound
from scaleset.model.network import LoadBalancer, Probe
from scaleset.reconcile import probes
from scaleset.store.repository import LoadBalancerRow

router = APIRouter(tags=["loadBalancers"])

PROVIDER = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
           "Microsoft.Network"
LOAD_BALANCERS = PROVIDER + "/loadBalancers"
LOAD_BALANCER = LOAD_BALANCERS + "/{name}"
PROBES = LOAD_BALANCER + "/probes"
PROBE = PROBES + "/{probe}"


def _load(context: ApiContext, subscription: str, resource_group: str, name: str
          ) -> LoadBalancerRow:
    key = probes.load_balancer_id(subscription, resource_group, name)
    with context.store.transaction() as tx:
        row = tx.get_load_balancer(key)
    if row is None:
        raise NotFound(f"The Resource 'Microsoft.Network/loadBalancers/{name}' under resource "
                       f"group '{resource_group}' was not found.")
    return row


def _respond(row: LoadBalancerRow, status: int = 200) -> JSONResponse:
    return JSONResponse(row.model.to_wire(), status_code=status,
                        headers={"ETag": row.model.etag or ""})


@router.put(LOAD_BALANCER, status_code=201,
            responses={200: {"model": LoadBalancer}, 201: {"model": LoadBalancer}})
def create_or_update(
    subscription: str, resource_group: str, name: str, request: Request, body: LoadBalancer,
    _v: str = Depends(network_version), _a: object = Depends(WRITE),
    context: ApiContext = Depends(get_context),
) -> JSONResponse:
    """Create a load balancer or replace it (probe ids are filled in by the server)."""
    with context.store.transaction() as tx:
        existing = tx.get_load_balancer(probes.load_balancer_id(subscription, resource_group,
                                                                name))
    check_preconditions(request, existing.model.etag if existing else None)
    row, created = probes.put_load_balancer(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now())
    context.notify(None)  # scale sets using a changed probe pick it up on their next pass
    return _respond(row, 201 if created else 200)


@router.get(LOAD_BALANCER, responses={200: {"model": LoadBalancer}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(network_version), _a: object = Depends(READ),
        context: ApiContext = Depends(get_context)) -> JSONResponse:
    return _respond(_load(context, subscription, resource_group, name))


@router.delete(LOAD_BALANCER, status_code=200,
               responses={204: {"description": "No such load balancer"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(network_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(get_context)) -> Response:
    """Delete a load balancer (400 while a scale set uses one of its probes; 204 if absent)."""
    key = probes.load_balancer_id(subscription, resource_group, name)
    with context.store.transaction() as tx:
        existing = tx.get_load_balancer(key)
    if existing is None:
        return Response(status_code=204)
    check_preconditions(request, existing.model.etag)
    deleted = probes.delete_load_balancer(context.store, lb_id=key)
    return Response(status_code=200 if deleted else 204)


@router.get(LOAD_BALANCERS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(network_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    with context.store.transaction() as tx:
        rows = tx.load_balancers(subscription, resource_group)
    return paging.page(request, [r.model.to_wire() for r in rows], context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Network/loadBalancers")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(network_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    with context.store.transaction() as tx:
        rows = tx.load_balancers(subscription)
    return paging.page(request, [r.model.to_wire() for r in rows], context.page_size)


@router.get(PROBES)
def list_probes(subscription: str, resource_group: str, name: str, request: Request,
                _v: str = Depends(network_version), _a: object = Depends(READ),
                context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    row = _load(context, subscription, resource_group, name)
    return paging.page(request, [p.to_wire() for p in row.model.properties.probes],
                       context.page_size)


@router.get(PROBE, responses={200: {"model": Probe}})
def get_probe(subscription: str, resource_group: str, name: str, probe: str,
              _v: str = Depends(network_version), _a: object = Depends(READ),
              context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    row = _load(context, subscription, resource_group, name)
    found = row.model.properties.probe(probe)
    if found is None:
        raise NotFound(f"Load balancer '{row.name}' has no probe '{probe}'.", code="NotFound")
    return found.to_wire()
