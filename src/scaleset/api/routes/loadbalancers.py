"""``Microsoft.Network/loadBalancers``: a minimal load balancer, there for its health probes.

Synchronous, as the Network SDK accepts for these verbs: PUT answers 201
(created) or 200 (replaced) with ``provisioningState: Succeeded``; DELETE 200,
or 204 when there is nothing to delete. Probes are changed by PUTting the
whole load balancer (as in ARM); they can be read on their own. Inbound NAT
rules can also be PUT, read and deleted one by one (az vmss create's template
writes its NAT rule as its own resource). A load
balancer or probe that a scale set's ``healthProbe`` names cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import check_preconditions, network_version, retry_lost_race
from scaleset.errors import InvalidParameter, NotFound
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
    context: ApiContext = Depends(request_context),
) -> JSONResponse:
    """Create a load balancer or replace it (probe ids are filled in by the server)."""
    # The preconditions are checked in the write's transaction, on the locked row.
    row, created = retry_lost_race(lambda: probes.put_load_balancer(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now(),
        check=lambda etag: check_preconditions(request, etag)))
    context.notify(None)  # scale sets using a changed probe pick it up on their next pass
    return _respond(row, 201 if created else 200)


@router.get(LOAD_BALANCER, responses={200: {"model": LoadBalancer}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(network_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    return _respond(_load(context, subscription, resource_group, name))


@router.delete(LOAD_BALANCER, status_code=200,
               responses={204: {"description": "No such load balancer"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(network_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete a load balancer (400 while a scale set uses one of its probes; 204 if absent)."""
    key = probes.load_balancer_id(subscription, resource_group, name)
    deleted = probes.delete_load_balancer(
        context.store, lb_id=key, check=lambda etag: check_preconditions(request, etag))
    return Response(status_code=200 if deleted else 204)


@router.get(LOAD_BALANCERS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(network_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    with context.store.transaction() as tx:
        rows = tx.load_balancers(subscription, resource_group)
    return paging.page(request, [r.model.to_wire() for r in rows], context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.Network/loadBalancers")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(network_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    with context.store.transaction() as tx:
        rows = tx.load_balancers(subscription)
    return paging.page(request, [r.model.to_wire() for r in rows], context.page_size)


@router.get(PROBES)
def list_probes(subscription: str, resource_group: str, name: str, request: Request,
                _v: str = Depends(network_version), _a: object = Depends(READ),
                context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    row = _load(context, subscription, resource_group, name)
    return paging.page(request, [p.to_wire() for p in row.model.properties.probes],
                       context.page_size)


@router.get(PROBE, responses={200: {"model": Probe}})
def get_probe(subscription: str, resource_group: str, name: str, probe: str,
              _v: str = Depends(network_version), _a: object = Depends(READ),
              context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    row = _load(context, subscription, resource_group, name)
    found = row.model.properties.probe(probe)
    if found is None:
        raise NotFound(f"Load balancer '{row.name}' has no probe '{probe}'.", code="NotFound")
    return found.to_wire()


# -- inbound NAT rules: a child resource az vmss create's template PUTs on its own --------

NAT_RULES = LOAD_BALANCER + "/inboundNatRules"
NAT_RULE = NAT_RULES + "/{rule}"


def _nat_rules(row: LoadBalancerRow) -> list[dict[str, Any]]:
    rules = row.model.to_wire().get("properties", {}).get("inboundNatRules") or []
    return [r for r in rules if isinstance(r, dict)]


def _nat_rule(row: LoadBalancerRow, rule: str) -> dict[str, Any]:
    found = next((r for r in _nat_rules(row) if str(r.get("name", "")).lower() == rule.lower()),
                 None)
    if found is None:
        raise NotFound(f"Load balancer '{row.name}' has no inbound NAT rule '{rule}'.",
                       code="NotFound")
    return {**found, "etag": row.model.etag}


def _with_nat_rules(row: LoadBalancerRow, rules: list[dict[str, Any]]) -> LoadBalancer:
    wire = row.model.to_wire()
    wire["properties"] = {**wire.get("properties", {}), "inboundNatRules": rules}
    return LoadBalancer.model_validate(wire)


@router.put(NAT_RULE, status_code=201)
def put_nat_rule(subscription: str, resource_group: str, name: str, rule: str,
                 body: Any = Body(default=None), _v: str = Depends(network_version),
                 _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                 ) -> JSONResponse:
    """Create or replace one inbound NAT rule of an existing load balancer."""
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object (an InboundNatRule)",
                               target="body")
    row = _load(context, subscription, resource_group, name)
    sent = {k: v for k, v in body.items() if k not in ("id", "etag", "type")}
    sent["name"] = rule
    rules = _nat_rules(row)
    index = next((i for i, r in enumerate(rules)
                  if str(r.get("name", "")).lower() == rule.lower()), None)
    if index is None:
        rules.append(sent)
    else:
        rules[index] = {**sent, "name": rules[index]["name"]}
    stored, _ = probes.put_load_balancer(
        context.store, subscription=subscription, resource_group=resource_group,
        name=row.name, model=_with_nat_rules(row, rules), now=context.clock.now())
    return JSONResponse(_nat_rule(stored, rule), status_code=201 if index is None else 200)


@router.get(NAT_RULE)
def get_nat_rule(subscription: str, resource_group: str, name: str, rule: str,
                 _v: str = Depends(network_version), _a: object = Depends(READ),
                 context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return _nat_rule(_load(context, subscription, resource_group, name), rule)


@router.get(NAT_RULES)
def list_nat_rules(subscription: str, resource_group: str, name: str, request: Request,
                   _v: str = Depends(network_version), _a: object = Depends(READ),
                   context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    row = _load(context, subscription, resource_group, name)
    return paging.page(request, [{**r, "etag": row.model.etag} for r in _nat_rules(row)],
                       context.page_size)


@router.delete(NAT_RULE, status_code=200, responses={204: {"description": "No such rule"}})
def delete_nat_rule(subscription: str, resource_group: str, name: str, rule: str,
                    _v: str = Depends(network_version), _a: object = Depends(WRITE),
                    context: ApiContext = Depends(request_context)) -> Response:
    row = _load(context, subscription, resource_group, name)
    rules = _nat_rules(row)
    kept = [r for r in rules if str(r.get("name", "")).lower() != rule.lower()]
    if len(kept) == len(rules):
        return Response(status_code=204)
    probes.put_load_balancer(context.store, subscription=subscription,
                             resource_group=resource_group, name=row.name,
                             model=_with_nat_rules(row, kept), now=context.clock.now())
    return Response(status_code=200)
