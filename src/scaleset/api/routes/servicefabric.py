"""``Microsoft.ServiceFabric/clusters``: a minimal cluster, there for its node types.

Synchronous: PUT answers 200 with ``provisioningState: Succeeded`` whether it
created or replaced the cluster (the Service Fabric API's create answers 200
or 202, never 201, so its SDK's poller accepts a 200 that is already done);
GET; DELETE 200, or 204 when there is nothing to delete; lists by resource
group and subscription. ``clusterEndpoint`` (what a scale set's Service Fabric
extension names in ``settings.clusterEndpoint``) and ``clusterId`` are
generated on creation and kept. A cluster a scale set belongs to cannot be
deleted, nor can the node type it uses be dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from scaleset.api import paging, versions
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import check_preconditions, retry_lost_race
from scaleset.errors import NotFound
from scaleset.model.servicefabric import Cluster
from scaleset.reconcile import servicefabric
from scaleset.store.repository import ResourceRow

router = APIRouter(tags=["serviceFabricClusters"])

PROVIDER = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
           "Microsoft.ServiceFabric"
CLUSTERS = PROVIDER + "/clusters"
CLUSTER = CLUSTERS + "/{name}"


async def service_fabric_version(request: Request,
                                 api_version: str | None = Query(default=None, alias="api-version")
                                 ) -> str:
    """The api-version of a ``Microsoft.ServiceFabric`` request, checked against its calendar."""
    return versions.check(api_version, versions.SERVICE_FABRIC,
                          provider="Microsoft.ServiceFabric", path=request.url.path)


def _respond(row: ResourceRow, status: int = 200) -> JSONResponse:
    return JSONResponse(dict(row.body), status_code=status,
                        headers={"ETag": str(row.body.get("etag") or "")})


def _load(context: ApiContext, subscription: str, resource_group: str, name: str
          ) -> ResourceRow:
    row = servicefabric.get_cluster(context.store, servicefabric.cluster_id(
        subscription, resource_group, name))
    if row is None:
        raise NotFound(f"The Resource 'Microsoft.ServiceFabric/clusters/{name}' under resource "
                       f"group '{resource_group}' was not found.")
    return row


@router.put(CLUSTER, responses={200: {"model": Cluster}})
def create_or_update(
    subscription: str, resource_group: str, name: str, request: Request, body: Cluster,
    _v: str = Depends(service_fabric_version), _a: object = Depends(WRITE),
    context: ApiContext = Depends(request_context),
) -> JSONResponse:
    """Create a cluster or replace it (its clusterEndpoint and clusterId are kept)."""
    # The preconditions are checked in the write's transaction, on the locked row.
    row, _ = retry_lost_race(lambda: servicefabric.put_cluster(
        context.store, subscription=subscription, resource_group=resource_group, name=name,
        model=body, now=context.clock.now(),
        check=lambda etag: check_preconditions(request, etag)))
    context.notify(None)  # node types of a changed cluster are looked at again
    return _respond(row)


@router.get(CLUSTER, responses={200: {"model": Cluster}})
def get(subscription: str, resource_group: str, name: str,
        _v: str = Depends(service_fabric_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    return _respond(_load(context, subscription, resource_group, name))


@router.delete(CLUSTER, status_code=200,
               responses={204: {"description": "No such cluster"}})
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(service_fabric_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete a cluster (409 while a scale set is one of its node types; 204 if absent)."""
    key = servicefabric.cluster_id(subscription, resource_group, name)
    deleted = servicefabric.delete_cluster(
        context.store, resource_id=key, check=lambda etag: check_preconditions(request, etag))
    return Response(status_code=200 if deleted else 204)


@router.get(CLUSTERS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(service_fabric_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    rows = servicefabric.list_clusters(context.store, subscription, resource_group)
    return paging.page(request, [dict(r.body) for r in rows], context.page_size)


@router.get("/subscriptions/{subscription}/providers/Microsoft.ServiceFabric/clusters")
def list_in_subscription(subscription: str, request: Request,
                         _v: str = Depends(service_fabric_version), _a: object = Depends(READ),
                         context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    rows = servicefabric.list_clusters(context.store, subscription)
    return paging.page(request, [dict(r.body) for r in rows], context.page_size)
