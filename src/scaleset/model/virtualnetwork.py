"""The virtual network (``Microsoft.Network/virtualNetworks``) and its subnets.

Typed: the address space, and each subnet's name and ``addressPrefix`` /
``addressPrefixes``; everything else a client sends (DHCP options, service
endpoints, delegations, a subnet's ``networkSecurityGroup``...) is kept as
written. ``layout_problems`` is the pure check of how the ranges fit: every
prefix a CIDR with its host bits zero, the address space's ranges disjoint,
every subnet inside it and no two subnets overlapping.

>>> vnet = VirtualNetwork.model_validate({"location": "westus", "properties": {
...     "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
...     "subnets": [{"name": "a", "properties": {"addressPrefix": "10.0.0.0/24"}},
...                 {"name": "b", "properties": {"addressPrefix": "10.1.0.0/24"}}]}})
>>> [p.code for p in layout_problems(vnet, "v")]
['NetcfgSubnetRangeOutsideVnet']
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel
from scaleset.model.netrules import (
    MAX_PREFIXES,
    Network,
    Problem,
    name_problem,
    network,
    overlap,
    within,
)

VIRTUAL_NETWORK_TYPE: Final = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE: Final = "Microsoft.Network/virtualNetworks/subnets"
MAX_SUBNETS: Final = 3000
"""Azure's limit of subnets per virtual network."""


def _prefixes(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(value) > MAX_PREFIXES:
        raise PydanticCustomError("prefixes", "at most {n} address prefixes are allowed",
                                  {"n": MAX_PREFIXES})
    for prefix in value:
        try:
            network(prefix)
        except ValueError as exc:
            raise PydanticCustomError("cidr", "{reason}", {"reason": str(exc)}) from None
    return value


class AddressSpace(ArmModel):
    address_prefixes: list[str] = Field(default_factory=list)

    @field_validator("address_prefixes", mode="after")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return _prefixes(value) or []


class SubnetProperties(ArmModel):
    """A subnet's range: ``addressPrefix`` or ``addressPrefixes`` (one is required).

    ``provisioningState`` and ``ipConfigurations`` are the server's."""

    address_prefix: str | None = None
    address_prefixes: list[str] | None = None
    provisioning_state: str | None = None

    @field_validator("address_prefix", mode="after")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is not None:
            _prefixes([value])
        return value

    @field_validator("address_prefixes", mode="after")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        return _prefixes(value)

    def ranges(self) -> list[Network]:
        """Every range of the subnet."""
        listed = [self.address_prefix] if self.address_prefix else []
        return [network(p) for p in [*listed, *(self.address_prefixes or [])]]


class Subnet(ArmModel):
    """A subnet; its ``id``, ``type`` and ``etag`` are filled in by the server."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    etag: str | None = None
    properties: SubnetProperties = Field(default_factory=SubnetProperties)


class VirtualNetworkProperties(ArmModel):
    address_space: AddressSpace | None = None
    subnets: list[Subnet] = Field(default_factory=list, max_length=MAX_SUBNETS)
    provisioning_state: str | None = None
    resource_guid: str | None = None


class VirtualNetwork(ArmModel):
    """``Microsoft.Network/virtualNetworks``: id, name, type, etag, provisioningState and
    resourceGuid are the server's; a client's values for them are ignored."""

    id: str | None = None
    name: str | None = None
    type: str = VIRTUAL_NETWORK_TYPE
    location: str = Field(min_length=1, max_length=64)
    tags: limits.Tags = None
    etag: str | None = None
    properties: VirtualNetworkProperties = Field(default_factory=VirtualNetworkProperties)


def subnet_problems(subnet: Subnet, index: int | None) -> list[Problem]:
    """What is wrong with one subnet on its own (its name, a range at all)."""
    where = f"properties.subnets[{index}]" if index is not None else "properties"
    out = []
    problem = name_problem(subnet.name or "", 1, 80)
    if problem is not None:
        out.append(Problem("InvalidResourceName", f"{where}.name" if index is not None
                           else "name", f"subnet name {problem}"))
    if not subnet.properties.address_prefix and not subnet.properties.address_prefixes:
        target = f"{where}.properties.addressPrefix" if index is not None \
            else "properties.addressPrefix"
        out.append(Problem("InvalidRequestFormat", target,
                           f"subnet '{subnet.name}' needs properties.addressPrefix (or "
                           "addressPrefixes), e.g. '10.0.0.0/24'"))
    return out


def layout_problems(vnet: VirtualNetwork, name: str) -> list[Problem]:
    """Everything wrong with how the network's ranges fit together, in order."""
    out: list[Problem] = []
    space = vnet.properties.address_space
    ranges = [network(p) for p in (space.address_prefixes if space else [])]
    if not ranges:
        out.append(Problem("InvalidRequestFormat",
                           "properties.addressSpace.addressPrefixes",
                           f"virtual network '{name}' needs at least one address prefix in "
                           "properties.addressSpace.addressPrefixes, e.g. '10.0.0.0/16'"))
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if overlap(a, b):
                out.append(Problem("VnetAddressSpacesOverlap",
                                   "properties.addressSpace.addressPrefixes",
                                   f"address prefixes {a} and {b} of virtual network '{name}' "
                                   "overlap; list each range once"))
    seen: dict[str, int] = {}
    placed: list[tuple[str, Network]] = []
    for index, subnet in enumerate(vnet.properties.subnets):
        out.extend(subnet_problems(subnet, index))
        key = (subnet.name or "").lower()
        if key in seen:
            out.append(Problem("InvalidRequestFormat", f"properties.subnets[{index}].name",
                               f"subnets[{seen[key]}] and subnets[{index}] are both named "
                               f"'{subnet.name}'; subnet names are unique within a virtual "
                               "network"))
        seen.setdefault(key, index)
        for r in subnet.properties.ranges():
            if ranges and not any(within(r, outer) for outer in ranges):
                out.append(Problem(
                    "NetcfgSubnetRangeOutsideVnet",
                    f"properties.subnets[{index}].properties.addressPrefix",
                    f"Subnet '{subnet.name}' is not valid because its IP address range {r} "
                    f"is outside the IP address range of virtual network '{name}' "
                    f"({', '.join(str(x) for x in ranges)})."))
            for other, other_range in placed:
                if overlap(r, other_range):
                    out.append(Problem(
                        "NetcfgSubnetRangesOverlap",
                        f"properties.subnets[{index}].properties.addressPrefix",
                        f"Subnet '{subnet.name}' is not valid in virtual network '{name}' "
                        f"because its IP address range {r} overlaps with that of subnet "
                        f"'{other}' ({other_range})."))
            placed.append((subnet.name or "", r))
    return out
