"""The Service Fabric cluster resource (``Microsoft.ServiceFabric/clusters``), reduced to its
node types.

A scale set that is a Service Fabric node type carries the Service Fabric
extension, whose settings name the cluster (``clusterEndpoint``) and the node
type (``nodeTypeRef``); automatic OS upgrade needs the extension's
``durabilityLevel`` to match the node type's here. Only node types are typed;
everything else a client sends (certificates, fabric settings, upgrade
policy...) is kept as-is. ``clusterEndpoint``, ``clusterId`` and
``provisioningState`` are the server's; a client's values for them are ignored.

Required as in Azure: ``location``, ``properties.managementEndpoint``,
``properties.nodeTypes`` (at least one, exactly one ``isPrimary``, names
unique), and per node type ``name``, ``isPrimary`` and ``vmInstanceCount``.
The node type's ports default to Service Fabric's usual 19000 (client) and
19080 (HTTP gateway), which Azure requires to be written out.

>>> cluster = Cluster.model_validate({"location": "westus", "properties": {
...     "managementEndpoint": "https://sf.example:19080",
...     "nodeTypes": [{"name": "nt1", "isPrimary": True, "vmInstanceCount": 5,
...                    "durabilityLevel": "silver"}]}})
>>> cluster.properties.node_type("NT1").durability_level
'Silver'
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel

CLUSTER_TYPE: Final = "Microsoft.ServiceFabric/clusters"

DurabilityLevel = Literal["Bronze", "Silver", "Gold"]
ReliabilityLevel = Literal["None", "Bronze", "Silver", "Gold", "Platinum"]

DURABILITY_LEVELS: Final[dict[str, DurabilityLevel]] = {
    "bronze": "Bronze", "silver": "Silver", "gold": "Gold"}
RELIABILITY_LEVELS: Final[dict[str, ReliabilityLevel]] = {
    "none": "None", "bronze": "Bronze", "silver": "Silver", "gold": "Gold",
    "platinum": "Platinum"}


def _canonical(value: Any, choices: dict[str, Any], what: str) -> Any:
    if isinstance(value, str) and value.lower() in choices:
        return choices[value.lower()]
    raise PydanticCustomError(
        "enum", "'{value}' is not a {what}; use one of {choices}",
        {"value": str(value), "what": what, "choices": ", ".join(choices.values())})


class NodeType(ArmModel):
    """A node type: the scale sets of one kind of node (``NodeTypeDescription``)."""

    name: str = Field(min_length=1)
    is_primary: bool
    vm_instance_count: int = Field(ge=0)
    durability_level: DurabilityLevel = "Bronze"
    """Azure's default: Bronze (no privileges; no automatic OS upgrade)."""
    client_connection_endpoint_port: int = Field(default=19000, ge=1, le=65535)
    http_gateway_endpoint_port: int = Field(default=19080, ge=1, le=65535)

    @field_validator("durability_level", mode="before")
    @classmethod
    def _durability(cls, value: Any) -> Any:
        return _canonical(value, DURABILITY_LEVELS, "durability level")


class ClusterProperties(ArmModel):
    management_endpoint: str = Field(min_length=1)
    node_types: list[NodeType] = Field(min_length=1)
    reliability_level: ReliabilityLevel | None = None
    cluster_endpoint: str | None = None
    cluster_id: str | None = None
    provisioning_state: str | None = None

    @field_validator("reliability_level", mode="before")
    @classmethod
    def _reliability(cls, value: Any) -> Any:
        return None if value is None else _canonical(value, RELIABILITY_LEVELS,
                                                     "reliability level")

    @field_validator("node_types", mode="after")
    @classmethod
    def _node_types(cls, node_types: list[NodeType]) -> list[NodeType]:
        seen: dict[str, int] = {}
        for index, node_type in enumerate(node_types):
            first = seen.setdefault(node_type.name.lower(), index)
            if first != index:
                raise PydanticCustomError(
                    "unique", "node type names must be unique in a cluster: nodeTypes[{a}] and "
                    "nodeTypes[{b}] are both named '{name}'; rename or remove one",
                    {"a": first, "b": index, "name": node_type.name})
        primaries = [n.name for n in node_types if n.is_primary]
        if len(primaries) != 1:
            raise PydanticCustomError(
                "primary", "exactly one node type must have isPrimary true (system services "
                "run there); {count} do{names}", {
                    "count": len(primaries),
                    "names": f": {', '.join(primaries)}" if primaries else ""})
        return node_types

    def node_type(self, name: str) -> NodeType | None:
        """The node type called ``name`` (case-insensitive), if any."""
        return next((n for n in self.node_types if n.name.lower() == name.lower()), None)


class Cluster(ArmModel):
    """``Microsoft.ServiceFabric/clusters``: id, name, type, etag and the read-only
    properties are the server's."""

    id: str | None = None
    name: str | None = None
    type: str = CLUSTER_TYPE
    location: str
    tags: limits.Tags = None
    etag: str | None = None
    properties: ClusterProperties
