"""Accepted api-versions, per resource provider.

Compute: every stable version from 2017-03-30 to 2026-04-01 (what
azure-mgmt-compute 39 sends by default; ``tests/unit/test_api_versions_sdk.py``
checks that every version the installed SDK lists is accepted). Automatic OS upgrade as it is now
(``automaticOSUpgradePolicy``) exists from 2018-10-01 on; the four older
versions are accepted so that a request at one of them is answered, and
turning automatic OS upgrade on there is refused by the requirement check
(``upgrade/requirements.py``), naming the api-version to use. Gallery,
Network and Service Fabric keep their own calendars.
"""

from __future__ import annotations

from typing import Final

from scaleset.errors import ScalesetError

COMPUTE: Final = (
    "2017-03-30", "2017-12-01", "2018-04-01", "2018-06-01", "2018-10-01", "2019-03-01",
    "2019-07-01", "2019-12-01", "2020-06-01", "2020-12-01", "2021-03-01", "2021-04-01",
    "2021-07-01", "2021-11-01", "2022-03-01", "2022-08-01", "2022-11-01", "2023-03-01",
    "2023-07-01", "2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01",
    "2025-11-01", "2026-03-01", "2026-04-01",
)
"""Compute: 2026-03-01 is what @azure/arm-compute 24.1 sends (issue 11) and one of
azure-mgmt-compute 39's ``api_versions_list``; 2026-04-01 is that SDK's default."""
GALLERY: Final = (
    "2019-03-01", "2019-07-01", "2019-12-01", "2020-09-30", "2021-07-01", "2021-10-01",
    "2022-01-03", "2022-03-03", "2022-08-03", "2023-07-03", "2024-03-03", "2025-03-03",
    "2025-12-03", "2026-03-03",
)
"""Gallery: 2025-12-03 is in azure-mgmt-compute 39's gallery image version operations."""
NETWORK: Final = (
    "2015-06-15", "2016-03-30", "2016-06-01", "2016-09-01", "2016-12-01", "2017-03-01",
    "2017-06-01", "2017-08-01", "2017-09-01", "2017-10-01", "2017-11-01", "2018-01-01",
    "2018-02-01", "2018-04-01", "2018-06-01", "2018-07-01", "2018-08-01",
    "2018-10-01", "2018-11-01", "2018-12-01", "2019-02-01", "2019-04-01", "2019-06-01",
    "2019-07-01", "2019-08-01", "2019-09-01", "2019-11-01", "2019-12-01", "2020-03-01",
    "2020-04-01", "2020-05-01", "2020-06-01", "2020-07-01", "2020-08-01", "2020-11-01",
    "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01",
    "2022-07-01", "2022-09-01", "2022-11-01", "2023-02-01", "2023-04-01", "2023-05-01",
    "2023-06-01", "2023-09-01", "2023-11-01", "2024-01-01", "2024-03-01", "2024-05-01",
    "2024-07-01", "2024-10-01", "2025-01-01", "2025-03-01", "2025-05-01", "2025-07-01",
    "2025-09-01", "2026-01-01", "2026-03-01",
)
"""Network: 2026-03-01 is what azure-mgmt-network 33.1 sends; @azure/arm-network 36 sends
2025-05-01; az 2.91's network commands send 2022-01-01 to 2025-09-01 by command. 2015-06-15
is what az vmss create's template writes for its virtual network and network security group
(``_template_builder.build_vnet_resource``/``build_nsg_resource``); from it to 2018-10-01 every
stable version of azure-rest-api-specs' ``specification/network/.../Microsoft.Network/stable``
(2016-10-01 and 2016-11-01 have no virtual network there)."""
RESOURCES: Final = (
    "2016-02-01", "2016-09-01", "2017-05-10", "2018-02-01", "2018-05-01", "2019-03-01",
    "2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01", "2020-06-01",
    "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2024-07-01", "2024-11-01",
    "2025-03-01", "2025-04-01", "2026-06-01",
)
"""Microsoft.Resources (resource groups, resources): every api-version azure-mgmt-resource
24 (the az venv) ships a client for; azure-cli 2.91 sends 2024-11-01 (its profile's
MGMT_RESOURCE_RESOURCES), that SDK and @azure/arm-resources 7.0.0 default to 2025-04-01.
Deployments use the same calendar; 2026-06-01 is what azure-mgmt-resource-deployments 2.0
(where azure-mgmt-resource 26 moved them) sends by default."""
SERVICE_FABRIC: Final = ("2016-09-01", "2018-02-01", "2019-03-01", "2020-03-01", "2021-06-01")
"""The stable api-versions of Microsoft.ServiceFabric/clusters."""
SUBSCRIPTIONS: Final = ("2016-06-01", "2018-06-01", "2019-06-01", "2019-11-01", "2021-01-01",
                       "2022-12-01")
"""Subscriptions, tenants and locations (``/subscriptions``, ``/tenants``): the versions
azure-mgmt-resource 24's SubscriptionClient (in az 2.91's venv) has packages for; az 2.91's
profile sends 2022-12-01 (ResourceType.MGMT_RESOURCE_SUBSCRIPTIONS; its hybrid profiles
name none, so they send the same). @azure/arm-resources-subscriptions is not installed."""
LATEST_COMPUTE: Final = COMPUTE[-1]


class InvalidApiVersion(ScalesetError):
    code = "InvalidApiVersionParameter"
    status = 400


class NoRegisteredProvider(ScalesetError):
    """An api-version a resource provider's type does not have: ARM answers this (not
    ``InvalidApiVersionParameter``, which is for ARM's own routes) for provider types."""

    code = "NoRegisteredProviderFound"
    status = 400


class MissingApiVersion(ScalesetError):
    code = "MissingApiVersionParameter"
    status = 400


def resource_type(path: str, namespace: str) -> tuple[str, str | None]:
    """The resource type a request path names under ``namespace`` (child types joined by
    '/', as ARM spells them) and the location in it, if any.

    >>> resource_type("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
    ...               "virtualMachineScaleSets/web/virtualMachines/0", "Microsoft.Compute")
    ('virtualMachineScaleSets/virtualMachines', None)
    >>> resource_type("/subscriptions/s/providers/Microsoft.Compute/locations/westus/"
    ...               "operations/1", "Microsoft.Compute")
    ('locations/operations', 'westus')
    """
    parts = path.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if namespace.lower() not in lowered:
        return namespace, None
    rest = parts[lowered.index(namespace.lower()) + 1:]
    types = rest[0::2]
    location = rest[1] if len(rest) > 1 and rest[0].lower() == "locations" else None
    return "/".join(types) or namespace, location


def check(api_version: str | None, accepted: tuple[str, ...], *, provider: str,
          path: str | None = None) -> str:
    """``api_version`` if ``provider`` accepts it; otherwise an ARM error naming the choices.

    With the request's ``path``, ``provider`` is a resource provider's namespace and a
    version it lacks is ARM's ``NoRegisteredProviderFound`` for the type the path names.
    """
    if not api_version:
        raise MissingApiVersion(
            "The api-version query parameter (?api-version=) is required for all requests; "
            f"use one of: {', '.join(accepted)}.", target="api-version")
    if api_version not in accepted and path is not None:
        kind, location = resource_type(path, provider.split("/")[0])
        where = f"location '{location}' and " if location else ""
        raise NoRegisteredProvider(
            f"No registered resource provider found for {where}API version '{api_version[:40]}'"
            f" for type '{kind}'. The supported api-versions are '{', '.join(accepted)}'.",
            target="api-version")
    if api_version not in accepted:
        raise InvalidApiVersion(
            f"The api-version '{api_version}' is invalid for {provider}. The supported "
            f"versions are '{', '.join(accepted)}'.", target="api-version")
    return api_version
