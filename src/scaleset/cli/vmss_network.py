"""``scaleset vmss list-instance-connection-info`` and ``get-boot-log``: reaching instances."""

from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer

from scaleset.cli import output
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import OutputFormat, OutputOption
from scaleset.cli.vmss import NameOption, ResourceGroupOption, ScaleSetVerb, app, scale_set_path


def connection_info(instances: list[dict[str, Any]]) -> dict[str, str]:
    """``{"instance 0": "127.34.0.1", ...}``: each instance's private address, as az keys it.

    >>> connection_info([{"instanceId": "3", "properties": {"instanceView":
    ...     {"privateIPAddress": "127.9.0.4"}}}])
    {'instance 3': '127.9.0.4'}
    """
    out = {}
    for item in instances:
        view = (item.get("properties") or {}).get("instanceView") or {}
        address = view.get("privateIPAddress")
        if address:
            out[f"instance {item.get('instanceId')}"] = str(address)
    return out


@app.command("list-instance-connection-info", cls=ScaleSetVerb)
def list_instance_connection_info(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """The address each instance answers on (its private IP in 127.0.0.0/8)."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name) + "/virtualMachines"
        items = list(client.paged(path, params={"$expand": "instanceView"}))
        output.emit(connection_info(items), fmt)


@app.command("get-boot-log", cls=ScaleSetVerb)
def get_boot_log(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_id: Annotated[str, typer.Option("--instance-id", help="The instance.")],
) -> None:
    """Print an instance's serial console log (boot diagnostics)."""
    with output.reporting(), _connect(ctx) as client:
        path = (scale_set_path(client.subscription, resource_group, name)
                + f"/virtualMachines/{quote(instance_id, safe='')}")
        client.post(path + "/retrieveBootDiagnosticsData")
        response = client.send("GET", path + "/bootDiagnostics/serialConsoleLog")
        sys.stdout.write(response.text)
