"""ARM's subscription-level reads: ``/subscriptions``, ``/subscriptions/{id}``, its
``/locations``, and ``/tenants``, in the shapes ARM returns.

``az login`` lists subscriptions (``--tenant`` given) or tenants and then each
tenant's subscriptions; ``az account list-locations`` and commands that need a
default region (``az vm image list --all``) list locations. Which subscriptions
and locations exist is ``reconcile/subscriptions.py``'s business; the tenant is
the authority's (``security/authority.py``). Every subscription is ``Enabled``
and ``RoleBased`` (a reader token may read it). Api-versions: the
``SUBSCRIPTIONS`` calendar.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from scaleset.api import paging, versions
from scaleset.api.auth import READ
from scaleset.api.context import ApiContext, request_context
from scaleset.catalog.regions import region
from scaleset.errors import NotFound
from scaleset.reconcile import subscriptions
from scaleset.security import authority

router = APIRouter(tags=["subscriptions"])

Subscription = Annotated[str, Path(min_length=1, max_length=128)]
TENANT_NAME = "scaleset"


async def subscriptions_version(
        api_version: str | None = Query(default=None, alias="api-version")) -> str:
    """The api-version of a subscription, tenant or location read."""
    return versions.check(api_version, versions.SUBSCRIPTIONS, provider="Microsoft.Resources")


def _tenant(context: ApiContext) -> str:
    return authority.server_identity(context.store, now=context.clock.now()).tenant_id


def display_name(subscription: str) -> str:
    """How a subscription is called: the default one ``scaleset``, others by their id.

    >>> display_name(subscriptions.DEFAULT_SUBSCRIPTION), display_name("1234abcd-0000")
    ('scaleset', 'scaleset-1234abcd')
    """
    if subscription == subscriptions.DEFAULT_SUBSCRIPTION:
        return "scaleset"
    return f"scaleset-{subscription[:8]}"


def subscription_wire(subscription: str, tenant: str) -> dict[str, Any]:
    """One subscription as ARM's Subscriptions - Get returns it."""
    return {
        "id": f"/subscriptions/{subscription}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": subscription,
        "tenantId": tenant,
        "displayName": display_name(subscription),
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                 "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    }


def location_wire(subscription: str, name: str) -> dict[str, Any]:
    """One location as ARM's Subscriptions - List Locations returns it."""
    shown = region(name)
    metadata: dict[str, Any] = {"regionType": "Physical", "regionCategory": "Other"}
    if shown.geography_group is not None:
        metadata["geographyGroup"] = shown.geography_group
    return {"id": f"/subscriptions/{subscription}/locations/{name}", "name": name,
            "type": "Region", "displayName": shown.display_name,
            "regionalDisplayName": shown.regional_display_name, "metadata": metadata}


def _known(context: ApiContext, subscription: str) -> str:
    canonical = subscription.lower()
    if not subscriptions.subscription_exists(context.store, canonical):
        raise NotFound(
            f"The subscription '{subscription}' could not be found. This server has "
            f"subscription {subscriptions.DEFAULT_SUBSCRIPTION} and every subscription that "
            "holds a resource; 'az account list' shows them.", code="SubscriptionNotFound")
    return canonical


@router.get("/subscriptions", summary="List subscriptions")
def list_subscriptions(request: Request, _v: str = Depends(subscriptions_version),
                       _a: object = Depends(READ),
                       context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    tenant = _tenant(context)
    items = [subscription_wire(s, tenant) for s in subscriptions.subscriptions(context.store)]
    return paging.page(request, items, context.page_size)


@router.get("/subscriptions/{subscription}", summary="Get a subscription")
def get_subscription(subscription: Subscription, _v: str = Depends(subscriptions_version),
                     _a: object = Depends(READ),
                     context: ApiContext = Depends(request_context)) -> JSONResponse:
    return JSONResponse(subscription_wire(_known(context, subscription), _tenant(context)))


@router.get("/subscriptions/{subscription}/locations", summary="List a subscription's locations")
def list_locations(subscription: Subscription, _v: str = Depends(subscriptions_version),
                   _a: object = Depends(READ),
                   context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    canonical = _known(context, subscription)
    # ARM answers the whole list in one page, without nextLink.
    return {"value": [location_wire(canonical, name)
                      for name in subscriptions.locations(context.store)]}


@router.get("/tenants", summary="List the tenants the caller belongs to")
def list_tenants(request: Request, _v: str = Depends(subscriptions_version),
                 _a: object = Depends(READ),
                 context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    tenant = _tenant(context)
    host = request.url.hostname or "localhost"
    return {"value": [{"id": f"/tenants/{tenant}", "tenantId": tenant,
                       "tenantCategory": "Home", "displayName": TENANT_NAME,
                       "domains": [host], "defaultDomain": host, "tenantType": "AAD"}]}
