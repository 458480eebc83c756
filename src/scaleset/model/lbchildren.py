"""A load balancer's child resources other than probes, as the Network RP returns them.

Frontend IP configurations, backend address pools, load-balancing rules,
inbound NAT pools and rules, outbound rules: kept as a client wrote them
(they are not interpreted), with what ARM adds on the way back: each one's
``id``, ``type`` and ``provisioningState: Succeeded``; the integer fields
az's template writes as strings (``"frontendPortRangeStart": "50000"``) as
integers; protocols in their canonical casing (``tcp`` → ``Tcp``).

>>> out = normalise({"inboundNatPools": [{"name": "nat", "properties": {
...     "protocol": "tcp", "frontendPortRangeStart": "50000", "backendPort": 22}}]}, "/lb")
>>> nat = out["inboundNatPools"][0]
>>> nat["id"], nat["type"], nat["properties"]["protocol"], nat["properties"][
...     "frontendPortRangeStart"]
('/lb/inboundNatPools/nat', 'Microsoft.Network/loadBalancers/inboundNatPools', 'Tcp', 50000)
"""

from __future__ import annotations

from typing import Any, Final

from scaleset.model import names

COLLECTIONS: Final = ("frontendIPConfigurations", "backendAddressPools", "loadBalancingRules",
                      "inboundNatPools", "inboundNatRules", "outboundRules")
INTEGER_FIELDS: Final = frozenset({
    "frontendPort", "backendPort", "frontendPortRangeStart", "frontendPortRangeEnd",
    "idleTimeoutInMinutes", "allocatedOutboundPorts"})
PROTOCOLS: Final = {"tcp": "Tcp", "udp": "Udp", "all": "All"}
MAX_CHILDREN: Final = 1000


def _properties(props: dict[str, Any]) -> dict[str, Any]:
    out = dict(props)
    for key, value in props.items():
        if key in INTEGER_FIELDS and isinstance(value, str) and value.strip().isdigit():
            out[key] = int(value)
        elif key == "protocol" and isinstance(value, str) and value.lower() in PROTOCOLS:
            out[key] = PROTOCOLS[value.lower()]
    out["provisioningState"] = "Succeeded"
    return out


def normalise(properties: dict[str, Any], lb_id: str) -> dict[str, Any]:
    """The load balancer's ``properties`` with every child filled in as ARM returns it.
    Children that are not objects with a name are left for the caller's validation."""
    out = dict(properties)
    for collection in COLLECTIONS:
        items = properties.get(collection)
        if not isinstance(items, list):
            continue
        filled = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                filled.append(item)
                continue
            props = item.get("properties")
            filled.append({**item, "id": f"{lb_id}/{collection}/{item['name']}",
                           "type": f"Microsoft.Network/loadBalancers/{collection}",
                           "properties": _properties(props if isinstance(props, dict) else {})})
        out[collection] = filled
    return out


def problems(properties: dict[str, Any]) -> list[tuple[str, str]]:
    """(target, message) for children that are not named objects, or share a name."""
    out = []
    for collection in COLLECTIONS:
        items = properties.get(collection)
        if items is None:
            continue
        if not isinstance(items, list) or len(items) > MAX_CHILDREN:
            out.append((f"properties.{collection}",
                        f"{collection} must be a list of at most {MAX_CHILDREN} objects"))
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name or "/" in name or len(name) > 80:
                out.append((f"properties.{collection}[{i}].name",
                            f"{collection}[{i}] needs a name of 1-80 characters without '/'"))
                continue
            reason = names.problem(f"Microsoft.Network/loadBalancers/{collection}", name)
            if reason is not None:
                out.append((f"properties.{collection}[{i}].name",
                            f"{collection}[{i}].name: {reason}"))
                continue
            first = seen.setdefault(name.lower(), i)
            if first != i:
                out.append((f"properties.{collection}[{i}].name",
                            f"{collection}[{first}] and [{i}] are both named '{name}'; names "
                            "are unique within a load balancer"))
    return out
