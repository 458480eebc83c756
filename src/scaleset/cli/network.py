"""``scaleset network lb ...``: load balancers and their health probes, like ``az network lb``.

A scale set's ``--health-probe`` must name a probe that exists, so the usual
order is ``network lb create``, ``network lb probe create``, then ``vmss
create --health-probe <the probe's id>``. Probes are changed as in ARM: GET
the load balancer, change its ``probes`` list, PUT it back with ``If-Match``
on the etag that was read, so a concurrent change fails with 412 instead of
being overwritten. Requests carry a ``Microsoft.Network`` api-version.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer

from scaleset.api.versions import NETWORK
from scaleset.cli import connection, output, verbs
from scaleset.cli.client import ArmClient, ArmClientError
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import Column, OutputFormat, OutputOption, lookup

API_VERSION: Final = NETWORK[-1]
"""The newest Microsoft.Network api-version the server accepts."""
DEFAULT_LOCATION: Final = "westus"
PARAMS: Final = {"api-version": API_VERSION}
READ_ONLY: Final = ("id", "name", "type", "etag")

app = connection.client_app(name="network",
                            help="Networking: load balancers and their health probes.",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)
lb_app = typer.Typer(name="lb", help="Manage load balancers (like az network lb).",
                     no_args_is_help=True)
probe_app = typer.Typer(name="probe", help="Manage a load balancer's health probes.",
                        no_args_is_help=True)
app.add_typer(lb_app, name="lb")
lb_app.add_typer(probe_app, name="probe")

LbVerb = verbs.by_ids("Microsoft.Network/loadBalancers")
ProbeVerb = verbs.by_ids("Microsoft.Network/loadBalancers/probes", "resource_group", "lb_name",
                         "name")
ProbeListVerb = verbs.by_ids("Microsoft.Network/loadBalancers", "resource_group", "lb_name")

ResourceGroupOption = Annotated[str, typer.Option("--resource-group", "-g",
                                                  help="Resource group.")]
LbNameOption = Annotated[str, typer.Option("--name", "-n", help="Load balancer name.")]
ProbeLbOption = Annotated[str, typer.Option("--lb-name", help="Load balancer name.")]
ProbeNameOption = Annotated[str, typer.Option("--name", "-n", help="Probe name.")]


class Sku(StrEnum):
    Basic = "Basic"
    Standard = "Standard"


class Protocol(StrEnum):
    Http = "Http"
    Https = "Https"
    Tcp = "Tcp"


def _resource_group(item: Any) -> str | None:
    match = re.search(r"/resourceGroups/([^/]+)", str(lookup(item, "id") or ""), re.IGNORECASE)
    return match.group(1) if match else None


LB_COLUMNS: Final = (
    Column("Name", "name"), Column("ResourceGroup", _resource_group),
    Column("Location", "location"), Column("Sku", "sku.name"),
    Column("Probes", lambda i: " ".join(str(p.get("name")) for p in
                                        lookup(i, "properties.probes") or [])),
    Column("ProvisioningState", "properties.provisioningState"),
)
PROBE_COLUMNS: Final = (
    Column("Name", "name"), Column("Protocol", "properties.protocol"),
    Column("Port", "properties.port"), Column("RequestPath", "properties.requestPath"),
    Column("IntervalInSeconds", "properties.intervalInSeconds"),
    Column("NumberOfProbes", "properties.numberOfProbes"),
    Column("ProbeThreshold", "properties.probeThreshold"),
)


def group_path(subscription: str, resource_group: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.Network")


def lb_path(subscription: str, resource_group: str, name: str) -> str:
    return f"{group_path(subscription, resource_group)}/loadBalancers/{quote(name, safe='')}"


def _get(client: ArmClient, path: str) -> Any:
    return client.get(path, params=PARAMS)


def _get_if_exists(client: ArmClient, path: str) -> dict[str, Any] | None:
    try:
        found = _get(client, path)
    except ArmClientError as exc:
        if exc.status == 404:
            return None
        raise
    return found if isinstance(found, dict) else None


def _put(client: ArmClient, path: str, body: dict[str, Any], etag: str | None) -> Any:
    """PUT ``body``; ``If-Match`` the etag read (replace), else ``If-None-Match: *`` (create)."""
    headers = {"If-Match": etag} if etag else {"If-None-Match": "*"}
    return client.body(client.send("PUT", path, params=PARAMS, json=body, headers=headers))


def writable(resource: dict[str, Any]) -> dict[str, Any]:
    """A GET body made fit to PUT back: the server's read-only fields left out.

    >>> writable({"id": "/x", "name": "lb", "etag": "e", "location": "westus",
    ...           "properties": {"provisioningState": "Succeeded", "probes": []}})
    {'location': 'westus', 'properties': {'probes': []}}
    """
    body = {k: v for k, v in resource.items() if k not in READ_ONLY}
    props = dict(body.get("properties") or {})
    props.pop("provisioningState", None)
    body["properties"] = props
    return body


def probe_body(*, name: str, protocol: Protocol, port: int, path: str | None,
               interval: int | None, threshold: int | None,
               probe_threshold: int | None) -> dict[str, Any]:
    """One probe as the load balancer's ``probes`` list holds it.

    >>> probe_body(name="http", protocol=Protocol.Http, port=80, path="/health",
    ...            interval=5, threshold=2, probe_threshold=None)
    {'name': 'http', 'properties': {'protocol': 'Http', 'port': 80, 'requestPath': '/health', \
'intervalInSeconds': 5, 'numberOfProbes': 2}}
    """
    props: dict[str, Any] = {"protocol": protocol.value, "port": port}
    optional = {"requestPath": path, "intervalInSeconds": interval,
                "numberOfProbes": threshold, "probeThreshold": probe_threshold}
    props.update({k: v for k, v in optional.items() if v is not None})
    return {"name": name, "properties": props}


# -- load balancers -----------------------------------------------------------------------

@lb_app.command("create", cls=LbVerb)
def create(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: LbNameOption,
    location: Annotated[str | None, typer.Option(
        "--location", "-l", help=f"Region (default {DEFAULT_LOCATION}).",
        show_default=False)] = None,
    sku: Annotated[Sku | None, typer.Option(
        case_sensitive=False, help="Basic (default) or Standard.")] = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Create a load balancer (run again, it keeps the probes and changes only what is given)."""
    with output.reporting(), _connect(ctx) as client:
        path = lb_path(client.subscription, resource_group, name)
        existing = _get_if_exists(client, path)
        body: dict[str, Any] = writable(existing) if existing else {
            "location": location or DEFAULT_LOCATION, "properties": {"probes": []}}
        if location is not None:
            body["location"] = location  # a change is refused by the server, with the reason
        if sku is not None:
            body["sku"] = {**(body.get("sku") or {}), "name": sku.value}
        result = _put(client, path, body, existing.get("etag") if existing else None)
        output.emit(result, fmt, columns=LB_COLUMNS)


@lb_app.command("show", cls=LbVerb)
def show(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: LbNameOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show a load balancer."""
    with output.reporting(), _connect(ctx) as client:
        output.emit(_get(client, lb_path(client.subscription, resource_group, name)), fmt,
                    columns=LB_COLUMNS)


@lb_app.command("list", cls=verbs.Verb)
def list_(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option(
        "--resource-group", "-g", help="Resource group (default: the whole subscription).")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List load balancers in a resource group, or in the subscription."""
    with output.reporting(), _connect(ctx) as client:
        path = (group_path(client.subscription, resource_group) if resource_group else
                f"/subscriptions/{quote(client.subscription, safe='')}/providers/"
                "Microsoft.Network") + "/loadBalancers"
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=LB_COLUMNS)


@lb_app.command("delete", cls=LbVerb)
def delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: LbNameOption,
) -> None:
    """Delete a load balancer (refused while a scale set uses one of its probes)."""
    with output.reporting(), _connect(ctx) as client:
        client.send("DELETE", lb_path(client.subscription, resource_group, name), params=PARAMS)


# -- probes -------------------------------------------------------------------------------

@probe_app.command("create", cls=ProbeVerb)
def probe_create(
    ctx: typer.Context, resource_group: ResourceGroupOption, lb_name: ProbeLbOption,
    name: ProbeNameOption,
    protocol: Annotated[Protocol, typer.Option(case_sensitive=False,
                                               help="Http, Https or Tcp.")],
    port: Annotated[int, typer.Option(help="Port to probe, 1-65535.")],
    path: Annotated[str | None, typer.Option(
        help="Request path for Http/Https, e.g. /health (not for Tcp).")] = None,
    interval: Annotated[int | None, typer.Option(
        help="Seconds between probes (default 15).")] = None,
    threshold: Annotated[int | None, typer.Option(
        help="Consecutive failures that mark an instance down (numberOfProbes, "
             "default 2).")] = None,
    probe_threshold: Annotated[int | None, typer.Option(
        help="probeThreshold: when set, it counts instead of --threshold.")] = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Add a probe to a load balancer, or replace the probe of that name."""
    new = probe_body(name=name, protocol=protocol, port=port, path=path, interval=interval,
                     threshold=threshold, probe_threshold=probe_threshold)
    with output.reporting(), _connect(ctx) as client:
        lb = lb_path(client.subscription, resource_group, lb_name)
        current = _get(client, lb)
        body = writable(current)
        kept = [p for p in body["properties"].get("probes") or []
                if str(p.get("name", "")).lower() != name.lower()]
        body["properties"]["probes"] = [*kept, new]
        result = _put(client, lb, body, current.get("etag"))
        made = next(p for p in lookup(result, "properties.probes") or []
                    if str(p.get("name", "")).lower() == name.lower())
        output.emit(made, fmt, columns=PROBE_COLUMNS)


@probe_app.command("show", cls=ProbeVerb)
def probe_show(
    ctx: typer.Context, resource_group: ResourceGroupOption, lb_name: ProbeLbOption,
    name: ProbeNameOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show one probe (its id is what ``vmss create --health-probe`` takes)."""
    with output.reporting(), _connect(ctx) as client:
        path = f"{lb_path(client.subscription, resource_group, lb_name)}/probes/" \
               f"{quote(name, safe='')}"
        output.emit(_get(client, path), fmt, columns=PROBE_COLUMNS)


@probe_app.command("list", cls=ProbeListVerb)
def probe_list(
    ctx: typer.Context, resource_group: ResourceGroupOption, lb_name: ProbeLbOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List the probes of a load balancer."""
    with output.reporting(), _connect(ctx) as client:
        path = lb_path(client.subscription, resource_group, lb_name) + "/probes"
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=PROBE_COLUMNS)


@probe_app.command("delete", cls=ProbeVerb)
def probe_delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, lb_name: ProbeLbOption,
    name: ProbeNameOption,
) -> None:
    """Remove a probe (refused while a scale set uses it; nothing to do if it is absent)."""
    with output.reporting(), _connect(ctx) as client:
        lb = lb_path(client.subscription, resource_group, lb_name)
        current = _get(client, lb)
        body = writable(current)
        probes = body["properties"].get("probes") or []
        kept = [p for p in probes if str(p.get("name", "")).lower() != name.lower()]
        if len(kept) != len(probes):
            body["properties"]["probes"] = kept
            _put(client, lb, body, current.get("etag"))
