"""ARM path segments are case-insensitive: ``resourcegroups`` is ``resourceGroups``.

A small ASGI middleware rewrites every keyword segment to its canonical
spelling before routing, leaving names (resource group, scale set, ...) as
the caller wrote them. A segment right after a name-taking keyword is a name
and is never rewritten, so a scale set may be called ``instanceView``.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

KEYWORDS: Final = {k.lower(): k for k in (
    "subscriptions", "resourceGroups", "providers", "Microsoft.Compute", "Microsoft.Network",
    "virtualMachineScaleSets", "virtualMachines", "instanceView", "osUpgradeHistory",
    "osRollingUpgrade", "rollingUpgrades", "latest", "cancel", "manualupgrade", "reimage",
    "locations", "publishers", "artifacttypes", "vmimage", "offers", "skus", "versions",
    "operations", "galleries", "images", "loadBalancers", "probes", "approveRollingUpgrade",
    "extensionRollingUpgrade", "admin", "Microsoft.ServiceFabric", "clusters",
    "resources", "virtualNetworks", "subnets", "publicIPAddresses", "networkSecurityGroups",
    "securityRules", "inboundNatRules",
    "Microsoft.Resources", "deployments", "operationStatuses", "validate",  # template deployments
    # power and instance verbs (the SDK sends .../poweroff on a scale set, powerOff on a VM)
    "start", "powerOff", "restart", "deallocate", "redeploy", "reimageall", "delete",
)}
NAME_TAKING: Final = frozenset(k.lower() for k in (
    "subscriptions", "resourceGroups", "virtualMachineScaleSets", "virtualMachines",
    "locations", "publishers", "offers", "skus", "versions", "operations", "galleries",
    "images", "loadBalancers", "probes", "clusters", "virtualNetworks", "subnets",
    "publicIPAddresses", "networkSecurityGroups", "securityRules", "inboundNatRules",
    "deployments", "operationStatuses",
))


def canonical_path(path: str) -> str:
    """The path with its keyword segments spelled canonically.

    >>> canonical_path("/SUBSCRIPTIONS/s/resourcegroups/RG/providers/microsoft.compute/"
    ...                "virtualmachinescalesets/instanceView/INSTANCEVIEW")
    '/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachineScaleSets/instanceView/instanceView'
    """
    segments = path.split("/")
    previous = ""
    for i, segment in enumerate(segments):
        lower = segment.lower()
        if lower in KEYWORDS and previous not in NAME_TAKING:
            segments[i] = KEYWORDS[lower]
            previous = lower
        else:
            previous = "" if previous in NAME_TAKING else lower
    return "/".join(segments)


class CanonicalPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = canonical_path(scope["path"])
            if path != scope["path"]:
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)
