"""What a scale set's network interfaces name, and whether it exists.

A scale set's ``networkProfile.networkInterfaceConfigurations[]`` name a
network security group, and per ip configuration a subnet, load-balancer
backend pools and inbound NAT pools. ``check_references`` refuses a model
whose references are malformed (400 ``LinkedInvalidPropertyId``) or point
nowhere (400 ``InvalidResourceReference``, Azure's code and wording), inside
the scale-set command's transaction; as for health probes, an id the stored
model already had is not checked again. ``users`` answers which scale sets
use a resource, for the refusals of deleting one in use.

Property names are matched case-insensitively, as ARM reads JSON (az's
template writes ``publicipaddressconfiguration``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from scaleset.errors import InvalidParameter
from scaleset.model.scaleset import ScaleSet
from scaleset.store.repository import ResourceRow, Tx

SUBNET: Final = "subnet"
SECURITY_GROUP: Final = "networkSecurityGroup"
BACKEND_POOL: Final = "backendPool"
NAT_POOL: Final = "natPool"

PROFILE: Final = "properties.virtualMachineProfile.networkProfile.networkInterfaceConfigurations"
_ID = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                 r"(?P<ns>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)"
                 r"(?:/(?P<child_type>[^/]+)/(?P<child>[^/]+))?/?$", re.IGNORECASE)
# What each kind of reference must name: (namespace/type of the parent, child collection).
_SHAPES: Final = {
    SUBNET: ("microsoft.network/virtualnetworks", "subnets"),
    SECURITY_GROUP: ("microsoft.network/networksecuritygroups", None),
    BACKEND_POOL: ("microsoft.network/loadbalancers", "backendaddresspools"),
    NAT_POOL: ("microsoft.network/loadbalancers", "inboundnatpools"),
}
_EXAMPLES: Final = {
    SUBNET: ".../providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}",
    SECURITY_GROUP: ".../providers/Microsoft.Network/networkSecurityGroups/{nsg}",
    BACKEND_POOL: ".../providers/Microsoft.Network/loadBalancers/{lb}/backendAddressPools/"
                  "{pool}",
    NAT_POOL: ".../providers/Microsoft.Network/loadBalancers/{lb}/inboundNatPools/{pool}",
}


def get(data: Mapping[str, Any] | None, key: str) -> Any:
    """``data[key]`` with the key matched case-insensitively (None when absent)."""
    if not isinstance(data, Mapping):
        return None
    if key in data:
        return data[key]
    lower = key.lower()
    return next((v for k, v in data.items() if isinstance(k, str) and k.lower() == lower),
                None)


@dataclass(frozen=True, slots=True)
class Reference:
    """One id a scale set's network profile names."""

    kind: str
    id: str
    target: str
    """Where in the scale set it is, e.g. ``...ipConfigurations[0].properties.subnet.id``."""
    nic: str
    ip_configuration: str | None

    @property
    def key(self) -> str:
        return self.id.strip().rstrip("/").lower()


def parse(resource_id: str) -> tuple[str, str, str, str | None, str | None] | None:
    """(subscription, group, ``namespace/type`` lower-cased, child collection lower-cased,
    child name) of an id of a resource or its child; None when it is not one."""
    match = _ID.match(resource_id.strip())
    if match is None:
        return None
    child_type = match["child_type"].lower() if match["child_type"] else None
    return (match["sub"], match["rg"], f"{match['ns']}/{match['type']}".lower(), child_type,
            match["child"])


def parent_id(resource_id: str) -> str:
    """The id of the top-level resource an id (of it or a child of it) names."""
    match = _ID.match(resource_id.strip())
    if match is None:
        return resource_id
    return (f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/"
            f"{match['ns']}/{match['type']}/{match['name']}")


def references(model: ScaleSet) -> list[Reference]:
    """Every network id the model names, in order."""
    network = model.properties.virtual_machine_profile.network_profile
    configs = network.network_interface_configurations if network is not None else None
    return list(_walk(configs or []))


def _walk(configs: list[dict[str, Any]]) -> Iterator[Reference]:
    for i, nic in enumerate(configs):
        props = get(nic, "properties")
        nic_name = str(get(nic, "name") or "")
        nsg = get(get(props, "networkSecurityGroup"), "id")
        if isinstance(nsg, str):
            yield Reference(SECURITY_GROUP, nsg,
                            f"{PROFILE}[{i}].properties.networkSecurityGroup.id", nic_name, None)
        for j, ipc in enumerate(get(props, "ipConfigurations") or []):
            where = f"{PROFILE}[{i}].properties.ipConfigurations[{j}].properties"
            ipc_props = get(ipc, "properties")
            ipc_name = str(get(ipc, "name") or "")
            subnet = get(get(ipc_props, "subnet"), "id")
            if isinstance(subnet, str):
                yield Reference(SUBNET, subnet, f"{where}.subnet.id", nic_name, ipc_name)
            for kind, key in ((BACKEND_POOL, "loadBalancerBackendAddressPools"),
                              (NAT_POOL, "loadBalancerInboundNatPools")):
                for k, pool in enumerate(get(ipc_props, key) or []):
                    pool_id = get(pool, "id")
                    if isinstance(pool_id, str):
                        yield Reference(kind, pool_id, f"{where}.{key}[{k}].id", nic_name,
                                        ipc_name)


def _children(body: Mapping[str, Any], collection: str) -> list[str]:
    items = get(get(body, "properties"), collection) or []
    return [str(get(item, "name") or "").lower() for item in items if isinstance(item, dict)]


def _exists(tx: Tx, ref: Reference, location: str) -> bool | None:
    """True/False whether what ``ref`` names exists in ``location``; None: malformed."""
    parsed = parse(ref.id)
    shape = _SHAPES[ref.kind]
    if parsed is None or parsed[2] != shape[0] or parsed[3] != shape[1]:
        return None
    top = parent_id(ref.id)
    if shape[0] == "microsoft.network/loadbalancers":
        balancer = tx.get_load_balancer(top, for_update=True)
        if balancer is None:
            return False
        body: Mapping[str, Any] = balancer.model.to_wire()
        row_location = balancer.location
    else:
        row: ResourceRow | None = tx.get_resource(top, for_update=True)
        if row is None or row.type.lower() != shape[0]:
            return False
        body, row_location = row.body, row.location
    if row_location.replace(" ", "").lower() != location.replace(" ", "").lower():
        return False
    if shape[1] is None:
        return True
    return (parsed[4] or "").lower() in _children(body, shape[1])


def check_references(tx: Tx, model: ScaleSet, *, scale_set_id: str,
                     previous: ScaleSet | None = None) -> None:
    """Refuse ``model`` when a network id it names is malformed or names nothing (in the
    scale set's location). Ids the ``previous`` model had are not checked again."""
    before = {r.key for r in references(previous)} if previous is not None else set()
    for ref in references(model):
        if ref.key in before:
            continue
        found = _exists(tx, ref, model.location)
        if found is None:
            raise InvalidParameter(
                f"Property id '{ref.id}' at path '{ref.target}' is invalid. Expect a fully "
                f"qualified resource id such as /subscriptions/{{subscription}}/resourceGroups"
                f"/{{group}}{_EXAMPLES[ref.kind]}.", target=ref.target,
                code="LinkedInvalidPropertyId")
        if not found:
            raise InvalidParameter(
                f"Resource {ref.id} referenced by resource {scale_set_id} was not found. "
                "Please make sure that the referenced resource exists, and that both "
                "resources are in the same region.", target=ref.target,
                code="InvalidResourceReference")


def users(tx: Tx, kind: str, resource_id: str) -> list[tuple[str, str, Reference]]:
    """(scale set id as displayed, scale set key, reference) for every reference of
    ``kind`` that names ``resource_id`` or something inside it."""
    key = resource_id.strip().rstrip("/").lower()
    out = []
    for scale_set_id in tx.scale_set_ids():
        row = tx.get_scale_set(scale_set_id)
        if row is None:
            continue
        for ref in references(row.model):
            if ref.kind == kind and (ref.key == key or ref.key.startswith(key + "/")):
                out.append((row.model.id or row.id, row.id, ref))
    return out


def ip_configuration_ids(tx: Tx, users_of: list[tuple[str, str, Reference]]
                         ) -> list[str]:
    """The ids of the instances' ip configurations those references make, as ARM lists them
    on a subnet: ``{scale set}/virtualMachines/{n}/networkInterfaces/{nic}/ipConfigurations/
    {ipconfig}``."""
    out = []
    for display_id, key, ref in users_of:
        for instance_id in sorted(tx.instances(key), key=lambda i: (len(i), i)):
            out.append(f"{display_id}/virtualMachines/{instance_id}/networkInterfaces/"
                       f"{ref.nic}/ipConfigurations/{ref.ip_configuration}")
    return out
