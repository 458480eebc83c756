"""``vmss create --health-probe NAME|ID [--lb NAME]``: the probe id a scale set is given.

As in az, ``--health-probe`` takes a probe id as is (the server checks it), or a
probe *name*: looked up in the load balancer ``--lb`` names, else among the
load balancers of the scale set's resource group (exactly one of them must
have a probe of that name). Names match case-insensitively, as ARM's do.
"""

from __future__ import annotations

from typing import Any

from scaleset.cli import network
from scaleset.cli.client import ArmClient, ArmClientError, ClientError


def _probes(lb: Any) -> list[dict[str, Any]]:
    probes = ((lb or {}).get("properties") or {}).get("probes") or []
    return [p for p in probes if isinstance(p, dict)]


def _named(lb: Any, probe: str) -> str | None:
    for item in _probes(lb):
        if str(item.get("name", "")).lower() == probe.lower():
            return str(item.get("id") or f"{lb['id']}/probes/{item['name']}")
    return None


def resolve(client: ArmClient, resource_group: str, probe: str, lb: str | None) -> str:
    """The probe's id; ``ClientError`` (code ``ProbeNotFound``) when no such probe exists."""
    if probe.startswith("/"):
        return probe
    if lb is not None:
        path = network.lb_path(client.subscription, resource_group, lb)
        try:
            found = client.get(path, params=network.PARAMS)
        except ArmClientError as exc:
            if exc.status != 404:
                raise
            raise ClientError("LoadBalancerNotFound", f"no load balancer '{lb}' in resource "
                              f"group '{resource_group}' (--lb)") from exc
        probe_id = _named(found, probe)
        if probe_id is None:
            have = ", ".join(str(p.get("name")) for p in _probes(found)) or "none"
            raise ClientError("ProbeNotFound", f"load balancer '{lb}' has no probe '{probe}' "
                              f"(its probes: {have})")
        return probe_id
    path = network.group_path(client.subscription, resource_group) + "/loadBalancers"
    matches = [found for found in (_named(item, probe) for item in client.paged(
        path, params=network.PARAMS)) if found]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ClientError("ProbeNotFound", f"no load balancer in resource group "
                          f"'{resource_group}' has a probe '{probe}'; give its id, or --lb")
    raise ClientError("AmbiguousProbe", f"{len(matches)} load balancers in resource group "
                      f"'{resource_group}' have a probe '{probe}'; say which with --lb")
