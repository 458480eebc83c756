"""``scaleset sf cluster ...``: Service Fabric clusters, the other half of a node type.

A scale set is a Service Fabric node type when its model carries the Service
Fabric extension; the extension's ``settings.clusterEndpoint`` is the
cluster's (``sf cluster show`` prints it) and its ``durabilityLevel`` must be
the cluster's for that node type (Silver or Gold for automatic OS upgrade).
Requests carry the newest Service Fabric api-version the server accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote

import typer

from scaleset.api.versions import SERVICE_FABRIC
from scaleset.cli import connection, output, verbs
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import Column, OutputFormat, OutputOption

PARAMS: Final = {"api-version": SERVICE_FABRIC[-1]}
DEFAULT_LOCATION: Final = "westus"
DURABILITY: Final = ("Bronze", "Silver", "Gold")

app = connection.client_app(name="sf", help="Service Fabric clusters (like az sf).",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)
clusters = typer.Typer(name="cluster", no_args_is_help=True,
                       help="Clusters: node types and their durability.")
app.add_typer(clusters, name="cluster")

ClusterVerb = verbs.by_ids("Microsoft.ServiceFabric/clusters")

ResourceGroupOption = Annotated[str, typer.Option("--resource-group", "-g",
                                                  help="Resource group.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Cluster name.")]


def _node_types(item: Any) -> str:
    types = output.lookup(item, "properties.nodeTypes") or []
    return " ".join(f"{t.get('name')}={t.get('durabilityLevel')}" for t in types)


CLUSTER_COLUMNS: Final = (
    Column("Name", "name"), Column("Location", "location"),
    Column("NodeTypes", _node_types),
    Column("ClusterEndpoint", "properties.clusterEndpoint"),
    Column("ProvisioningState", "properties.provisioningState"),
)


def cluster_path(subscription: str, resource_group: str | None, name: str | None = None
                 ) -> str:
    """The clusters of a resource group (or of the subscription), or one cluster."""
    path = f"/subscriptions/{quote(subscription, safe='')}"
    if resource_group is not None:
        path += f"/resourceGroups/{quote(resource_group, safe='')}"
    path += "/providers/Microsoft.ServiceFabric/clusters"
    return path + (f"/{quote(name, safe='')}" if name else "")


def parse_node_types(values: list[str], *, instances: int) -> list[dict[str, Any]]:
    """``NAME[=DURABILITY[=INSTANCES]]`` values; the first is the primary node type.

    >>> parse_node_types(["nt1=silver", "nt2=Gold=3"], instances=5)
    [{'name': 'nt1', 'isPrimary': True, 'durabilityLevel': 'Silver', 'vmInstanceCount': 5}, \
{'name': 'nt2', 'isPrimary': False, 'durabilityLevel': 'Gold', 'vmInstanceCount': 3}]
    """
    out: list[dict[str, Any]] = []
    for value in values:
        for item in value.replace(",", " ").split():
            parts = item.split("=")
            if len(parts) > 3 or not parts[0]:
                raise typer.BadParameter(f"'{item}' is not NAME[=DURABILITY[=INSTANCES]]",
                                         param_hint="--node-type")
            durability = parts[1] if len(parts) > 1 else "Silver"
            known = {d.lower(): d for d in DURABILITY}
            if durability.lower() not in known:
                raise typer.BadParameter(f"durability '{durability}' of '{item}' is not one of "
                                         f"{', '.join(DURABILITY)}", param_hint="--node-type")
            count = parts[2] if len(parts) > 2 else str(instances)
            if not count.isdigit():
                raise typer.BadParameter(f"instance count '{count}' of '{item}' is not a "
                                         "number", param_hint="--node-type")
            out.append({"name": parts[0], "isPrimary": not out,
                        "durabilityLevel": known[durability.lower()],
                        "vmInstanceCount": int(count)})
    return out


@clusters.command("create", cls=ClusterVerb)
def create(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    node_type: Annotated[list[str], typer.Option(
        "--node-type", help="NAME[=DURABILITY[=INSTANCES]], repeatable; the first is the "
        "primary. Durability Bronze, Silver (default) or Gold.")],
    location: Annotated[str, typer.Option("--location", "-l", help="Region.")]
    = DEFAULT_LOCATION,
    reliability: Annotated[str, typer.Option(help="reliabilityLevel, e.g. Silver.")]
    = "Silver",
    management_endpoint: Annotated[str | None, typer.Option(
        help="Default: https://NAME.LOCATION.cloudapp.azure.com:19080")] = None,
    vm_instance_count: Annotated[int, typer.Option(
        min=1, help="Instances of a node type that does not say.")] = 5,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Create a cluster (or replace its definition); prints it with its clusterEndpoint."""
    body = {"location": location, "properties": {
        "managementEndpoint": management_endpoint
        or f"https://{name.lower()}.{location.replace(' ', '').lower()}.cloudapp.azure.com:19080",
        "reliabilityLevel": reliability,
        "nodeTypes": parse_node_types(node_type, instances=vm_instance_count)}}
    with output.reporting(), _connect(ctx) as client:
        response = client.send("PUT", cluster_path(client.subscription, resource_group, name),
                               params=PARAMS, json=body)
        output.emit(response.json(), fmt, columns=CLUSTER_COLUMNS)


@clusters.command("show", cls=ClusterVerb)
def show(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show a cluster."""
    with output.reporting(), _connect(ctx) as client:
        output.emit(client.get(cluster_path(client.subscription, resource_group, name),
                               params=PARAMS), fmt, columns=CLUSTER_COLUMNS)


@clusters.command("list", cls=verbs.Verb)
def list_(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option(
        "--resource-group", "-g", help="Resource group (default: the whole subscription).")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List clusters in a resource group, or in the subscription."""
    with output.reporting(), _connect(ctx) as client:
        path = cluster_path(client.subscription, resource_group)
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=CLUSTER_COLUMNS)


@clusters.command("delete", cls=ClusterVerb)
def delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
) -> None:
    """Delete a cluster (refused while a scale set is one of its node types)."""
    with output.reporting(), _connect(ctx) as client:
        client.send("DELETE", cluster_path(client.subscription, resource_group, name),
                    params=PARAMS)
