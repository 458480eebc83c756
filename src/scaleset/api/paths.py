"""ARM path segments are case-insensitive: ``resourcegroups`` is ``resourceGroups``.

Before routing (``ArmPathMiddleware``), every keyword segment is rewritten to its
canonical spelling, leaving names (resource group, scale set, ...) as
the caller wrote them. A segment right after a name-taking keyword is a name
and is never rewritten, so a scale set may be called ``instanceView``.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from scaleset.api import access, envelope, names

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


class ArmPathMiddleware:
    """Innermost, just outside the routing: the three jobs each request's path needs, as
    one layer (one layer per job cost a call and a wrapped ``send`` each): its keyword
    segments spelled canonically (``canonical_path``), its names checked on that path
    (``names.name_problem``: a refused name is answered here, unrouted), and the route
    that answered noted for the access log and metrics (``access.serve_noting_route``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = canonical_path(scope["path"])
        if path != scope["path"]:
            scope = dict(scope)
            scope["path"] = path
            scope["raw_path"] = path.encode()
        refused = names.name_problem(scope["method"], path)
        if refused is not None:
            status, code, message, target = refused
            await envelope.response(status, code, message, target=target)(
                scope, receive, send)
            return
        await access.serve_noting_route(self.app, scope, receive, send)
