"""``scaleset vmss ...``: the ``az vmss`` verbs, spoken to a scaleset server over ARM JSON.

Each verb is one or a few requests through :class:`~scaleset.cli.client.ArmClient`;
writes wait for their long-running operation unless ``--no-wait``. ``update``
is GET, then a *sparse* PATCH of just the ``--set`` paths with ``If-Match`` on
the etag it read: the server merges it (objects merge, lists replace), so
fields the GET never shows (``protectedSettings``) survive, and a concurrent
change fails with 412 instead of being overwritten. ``--set`` follows az:
dotted paths, ``[n]`` indexes, keys matched case-insensitively against the
resource, a first key that is not top-level looked up under ``properties``,
values parsed as JSON when they parse (``5``, ``true``, ``{"a": 1}``) and
kept as strings otherwise. A path through a list sends the whole list. A key
the scale set does not have (not in the GET body, not a field of scaleset's
model, not below a free-form map such as ``tags``) is refused before anything
is sent: the server would store it and ignore it (:mod:`scaleset.cli.setpaths`).

Options that take several values accept them az-style (``--zones 1 2 3``) as
well as repeated (``--zones 1 --zones 2``); every verb taking ``-g``/``-n``
also takes ``--ids``, and every verb that prints takes ``--query``; see
:mod:`scaleset.cli.verbs`. ``update``'s policy flags (``--max-surge``, ...)
are ``--set`` assignments under ``upgradePolicy`` spelled as az spells them.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from scaleset.cli import (connection, events, jsonpaths, output, probe_ref, rolling_wait,
                          setpaths, verbs, watch)
from scaleset.cli.client import ArmClient, ArmClientError
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import Column, OutputFormat, OutputOption, lookup

DEFAULT_LOCATION: Final = "westus"
DEFAULT_VM_SKU: Final = "Standard_D2s_v3"
DEFAULT_INSTANCE_COUNT: Final = 2
DEFAULT_ADMIN: Final = "azureuser"
TOP_LEVEL_KEYS: Final = frozenset({"id", "name", "type", "location", "etag", "sku", "tags",
                                   "zones", "identity", "plan", "extendedLocation"})
_ENVELOPE: Final = frozenset(k.lower() for k in TOP_LEVEL_KEYS | {"properties"})
RUNNING: Final = frozenset({"RollingForward", "RollingBack"})


VariadicCommand = verbs.Verb
"""The name other modules import; the az-style repeatable options live in ``verbs.Verb``."""
ScaleSetVerb = verbs.by_ids("Microsoft.Compute/virtualMachineScaleSets")


app = connection.client_app(name="vmss", help="Manage virtual machine scale sets (like az vmss).",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)
rolling_upgrade = typer.Typer(name="rolling-upgrade", no_args_is_help=True,
                              help="Start, follow, approve and cancel rolling OS image upgrades.")
app.add_typer(rolling_upgrade, name="rolling-upgrade")

ResourceGroupOption = Annotated[str, typer.Option("--resource-group", "-g",
                                                  help="Resource group.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Scale set name.")]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="Return once the server accepted the request; do not wait for it.")]
InstanceIdsOption = Annotated[list[str] | None, typer.Option(
    "--instance-ids", "--instance-id", help="Instance ids, e.g. --instance-ids 0 3 4.")]


def group_path(subscription: str, resource_group: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.Compute")


def scale_set_path(subscription: str, resource_group: str, name: str) -> str:
    return f"{group_path(subscription, resource_group)}/virtualMachineScaleSets/" \
           f"{quote(name, safe='')}"


# -- table columns -------------------------------------------------------------------------

def _resource_group(item: Any) -> str | None:
    match = re.search(r"/resourceGroups/([^/]+)", str(lookup(item, "id") or ""), re.IGNORECASE)
    return match.group(1) if match else None


def _image(ref: Any) -> str | None:
    if not isinstance(ref, dict):
        return None
    if ref.get("id"):
        return str(ref["id"])
    urn = ":".join(str(ref.get(k) or "") for k in ("publisher", "offer", "sku", "version"))
    exact = ref.get("exactVersion")
    return f"{urn} ({exact})" if exact and exact != ref.get("version") else urn


def _health(item: Any) -> str | None:
    code = lookup(item, "properties.instanceView.vmHealth.status.code")
    return str(code).removeprefix("HealthState/") if code else None


# Priorities: what a narrow terminal keeps (name, image, state) and drops first (zones).
SCALE_SET_COLUMNS: Final = (
    Column("Name", "name", 9), Column("ResourceGroup", _resource_group, 6),
    Column("Location", "location", 2),
    Column("Zones", lambda i: " ".join(i.get("zones") or []), 1),
    Column("Capacity", "sku.capacity", 5),
    Column("Image", lambda i: _image(lookup(
        i, "properties.virtualMachineProfile.storageProfile.imageReference")), 8),
    Column("UpgradeMode", "properties.upgradePolicy.mode", 4),
    Column("AutoOSUpgrade",
           "properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade", 3),
    Column("ProvisioningState", "properties.provisioningState", 7),
)
INSTANCE_COLUMNS: Final = (
    Column("InstanceId", "instanceId", 9), Column("Name", "name", 4),
    Column("Zone", "zones[0]", 3),
    Column("ProvisioningState", "properties.provisioningState", 6),
    Column("LatestModel", "properties.latestModelApplied", 7),
    Column("Image", "properties.storageProfile.imageReference.exactVersion", 8),
    Column("Health", _health, 8),
    Column("PrivateIp", "properties.instanceView.privateIPAddress", 5),
    Column("ProtectScaleIn", "properties.protectionPolicy.protectFromScaleIn", 2),
    Column("ProtectActions", "properties.protectionPolicy.protectFromScaleSetActions", 1),
)
_STATUS_COLUMNS: Final = (
    Column("Status", "properties.runningStatus.code"),
    Column("Successful", "properties.progress.successfulInstanceCount"),
    Column("Failed", "properties.progress.failedInstanceCount"),
    Column("InProgress", "properties.progress.inProgressInstanceCount"),
    Column("Pending", "properties.progress.pendingInstanceCount"),
    Column("StartTime", "properties.runningStatus.startTime"),
    Column("EndTime", "properties.runningStatus.endTime"),
    Column("Error", "properties.error.code"),
)
ROLLING_UPGRADE_COLUMNS: Final = (*_STATUS_COLUMNS[:1], Column(
    "LastAction", "properties.runningStatus.lastAction"), *_STATUS_COLUMNS[1:])
HISTORY_COLUMNS: Final = (
    *_STATUS_COLUMNS[:1], Column("StartedBy", "properties.startedBy"),
    Column("TargetImage", lambda i: _image(lookup(i, "properties.targetImageReference"))),
    *_STATUS_COLUMNS[1:3],
    Column("RolledBack", "properties.rollbackInfo.successfullyRolledbackInstanceCount"),
    *_STATUS_COLUMNS[5:],
)
VIEW_COLUMNS: Final = (Column("Component", "component"), Column("Code", "code"),
                       Column("Count", "count"), Column("Message", "message"))


def _view_rows(view: Any) -> list[dict[str, Any]]:
    """Instance views as rows: status summaries (scale set) or statuses (instance)."""
    rows: list[dict[str, Any]] = []
    if not isinstance(view, dict):
        return rows
    for s in lookup(view, "virtualMachine.statusesSummary") or []:
        rows.append({"component": "virtualMachine", **s})
    for ext in view.get("extensions") or []:
        for s in ext.get("statusesSummary") or ext.get("statuses") or []:
            rows.append({"component": ext.get("name"), **s})
    for s in view.get("statuses") or []:
        rows.append({"component": "", "message": s.get("displayStatus"), **s})
    health = lookup(view, "vmHealth.status")
    if isinstance(health, dict):
        rows.append({"component": "vmHealth", "message": health.get("displayStatus"), **health})
    return rows


# -- create --------------------------------------------------------------------------------

class UpgradeMode(StrEnum):
    Automatic = "Automatic"
    Manual = "Manual"
    Rolling = "Rolling"


def parse_urn(urn: str) -> dict[str, str]:
    """``--image`` as an ``imageReference``: a URN like az's, or an image resource id.

    >>> parse_urn("Canonical:ubuntu-24_04-lts:server:latest")["offer"]
    'ubuntu-24_04-lts'
    >>> parse_urn("Canonical:ubuntu-24_04-lts:server")["version"]
    'latest'
    """
    if urn.startswith("/"):
        return {"id": urn}
    parts = urn.split(":")
    if len(parts) == 3:
        parts.append("latest")
    if len(parts) != 4 or not all(p.strip() for p in parts):
        raise typer.BadParameter(
            f"'{urn}' is not an image URN; use Publisher:Offer:Sku:Version, e.g. "
            "Canonical:ubuntu-24_04-lts:server:latest, or an image resource id",
            param_hint="--image")
    return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))


def _duration(value: str) -> str:
    if value.isdigit():
        return f"PT{int(value)}S"
    if re.fullmatch(r"P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?", value.upper()) \
            and value.upper() not in ("P", "PT"):
        return value.upper()
    raise typer.BadParameter(f"'{value}' is neither seconds nor an ISO 8601 duration "
                             "such as PT30S", param_hint="--pause-time-between-batches")


def _read_body(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint="--file") from exc
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc.msg} at line {exc.lineno}",
                                 param_hint="--file") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a JSON object (a scale set resource)",
                                 param_hint="--file")
    return data


def skeleton(name: str) -> dict[str, Any]:
    """The body ``create`` starts from without ``--file`` (az's defaults, location westus)."""
    prefix = re.sub(r"[^A-Za-z0-9-]", "", name)[:9] or "vm"
    return {
        "location": DEFAULT_LOCATION,
        "sku": {"name": DEFAULT_VM_SKU, "tier": "Standard", "capacity": DEFAULT_INSTANCE_COUNT},
        "properties": {
            "orchestrationMode": "Uniform",
            "upgradePolicy": {"mode": UpgradeMode.Manual.value},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": prefix, "adminUsername": DEFAULT_ADMIN},
                "storageProfile": {"osDisk": {
                    "createOption": "FromImage", "caching": "ReadWrite",
                    "managedDisk": {"storageAccountType": "Premium_LRS"}}}}}}


AutoOsUpgradeOption = Annotated[str | None, typer.Option(
    "--enable-auto-os-upgrade", metavar=verbs.BOOL_METAVAR, show_default=False,
    help="Automatic OS image upgrades on (the flag alone, or true) or off (false).")]
MaxBatchOption = Annotated[int | None, typer.Option(
    min=5, max=100, metavar="PERCENT",
    help="Most instances in one batch, in percent (maxBatchInstancePercent).")]
MaxUnhealthyOption = Annotated[int | None, typer.Option(
    min=5, max=100, metavar="PERCENT",
    help="Stop when more instances than this are unhealthy (maxUnhealthyInstancePercent).")]
MaxUnhealthyUpgradedOption = Annotated[int | None, typer.Option(
    min=0, max=100, metavar="PERCENT",
    help="Stop when more upgraded instances than this are unhealthy "
         "(maxUnhealthyUpgradedInstancePercent).")]
PauseOption = Annotated[str | None, typer.Option(
    metavar="DURATION", help="Seconds, or ISO 8601 such as PT30S.")]

_UP = ("properties", "upgradePolicy")
_ROLLING = (*_UP, "rollingUpgradePolicy")
_AUTO = (*_UP, "automaticOSUpgradePolicy")
_VM = ("properties", "virtualMachineProfile")


@app.command("create", cls=ScaleSetVerb)
def create(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    file: Annotated[Path | None, typer.Option(
        "--file", help="JSON scale set body to PUT; other flags given override its fields.",
        dir_okay=False)] = None,
    image: Annotated[str | None, typer.Option(
        help="Publisher:Offer:Sku:Version (version may be 'latest') or an image id.")] = None,
    instance_count: Annotated[int | None, typer.Option(
        min=0, help=f"Instances (default {DEFAULT_INSTANCE_COUNT})")] = None,
    location: Annotated[str | None, typer.Option(
        "--location", "-l", help=f"Region (default {DEFAULT_LOCATION})")] = None,
    vm_sku: Annotated[str | None, typer.Option(help=f"(default {DEFAULT_VM_SKU})")] = None,
    upgrade_policy_mode: Annotated[UpgradeMode | None, typer.Option(
        case_sensitive=False, help="(default Manual)")] = None,
    enable_auto_os_upgrade: AutoOsUpgradeOption = None,
    disable_auto_rollback: Annotated[bool, typer.Option(
        "--disable-auto-rollback", help="No rollback when an automatic upgrade fails.")]
    = False,
    use_rolling_upgrade_policy: Annotated[bool, typer.Option(
        "--use-rolling-upgrade-policy",
        help="Automatic upgrades follow the rolling upgrade policy.")] = False,
    health_probe: Annotated[str | None, typer.Option(
        metavar="NAME|ID", help="The health probe: its id, or its name in --lb (or in the "
        "resource group's only load balancer that has one of that name).")] = None,
    lb: Annotated[str | None, typer.Option(
        "--lb", metavar="NAME", help="The load balancer whose probe --health-probe names.")]
    = None,
    zones: Annotated[list[str] | None, typer.Option(help="Zones, e.g. --zones 1 2 3.")] = None,
    max_batch_instance_percent: MaxBatchOption = None,
    max_unhealthy_instance_percent: MaxUnhealthyOption = None,
    max_unhealthy_upgraded_instance_percent: MaxUnhealthyUpgradedOption = None,
    pause_time_between_batches: PauseOption = None,
    prioritize_unhealthy_instances: Annotated[bool, typer.Option(
        "--prioritize-unhealthy-instances")] = False,
    enable_cross_zone_upgrade: Annotated[bool, typer.Option(
        "--enable-cross-zone-upgrade")] = False,
    admin_username: Annotated[str | None, typer.Option(
        help=f"(default {DEFAULT_ADMIN})")] = None,
    custom_data: Annotated[Path | None, typer.Option(
        help="File sent as osProfile.customData (base64-encoded for you).",
        dir_okay=False)] = None,
    data_disk_sizes_gb: Annotated[list[int] | None, typer.Option(
        help="One empty data disk per size, e.g. --data-disk-sizes-gb 32 64.")] = None,
    tags: Annotated[list[str] | None, typer.Option(help="key=value ...")] = None,
    no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Create a scale set (or replace its model): from --file, or from flags."""
    if file is None and image is None:
        raise typer.BadParameter("give --image Publisher:Offer:Sku:Version, or --file with "
                                 "the whole body", param_hint="--image")
    if lb is not None and health_probe is None:
        raise typer.BadParameter("--lb only says where --health-probe is; give the probe too",
                                 param_hint="--lb")
    auto_os_upgrade = verbs.truth(enable_auto_os_upgrade, "--enable-auto-os-upgrade")
    body = _read_body(file) if file is not None else skeleton(name)
    data = None
    if custom_data is not None:
        try:
            data = base64.b64encode(custom_data.read_bytes()).decode("ascii")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {custom_data}: {exc.strerror}",
                                     param_hint="--custom-data") from exc
    overrides: list[tuple[tuple[str, ...], Any]] = [
        (("location",), location),
        (("sku", "name"), vm_sku),
        (("sku", "capacity"), instance_count),
        (("zones",), list(zones) if zones else None),
        (("tags",), dict(t.partition("=")[::2] for t in tags) if tags else None),
        ((*_VM, "storageProfile", "imageReference"), parse_urn(image) if image else None),
        ((*_VM, "osProfile", "adminUsername"), admin_username),
        ((*_VM, "osProfile", "customData"), data),
        ((*_VM, "storageProfile", "dataDisks"),
         [{"lun": lun, "createOption": "Empty", "diskSizeGB": size}
          for lun, size in enumerate(data_disk_sizes_gb)] if data_disk_sizes_gb else None),
        ((*_UP, "mode"), upgrade_policy_mode.value if upgrade_policy_mode else None),
        ((*_AUTO, "enableAutomaticOSUpgrade"), auto_os_upgrade),
        ((*_AUTO, "disableAutomaticRollback"), True if disable_auto_rollback else None),
        ((*_AUTO, "useRollingUpgradePolicy"), True if use_rolling_upgrade_policy else None),
        ((*_ROLLING, "maxBatchInstancePercent"), max_batch_instance_percent),
        ((*_ROLLING, "maxUnhealthyInstancePercent"), max_unhealthy_instance_percent),
        ((*_ROLLING, "maxUnhealthyUpgradedInstancePercent"),
         max_unhealthy_upgraded_instance_percent),
        ((*_ROLLING, "pauseTimeBetweenBatches"),
         _duration(pause_time_between_batches) if pause_time_between_batches else None),
        ((*_ROLLING, "prioritizeUnhealthyInstances"),
         True if prioritize_unhealthy_instances else None),
        ((*_ROLLING, "enableCrossZoneUpgrade"), True if enable_cross_zone_upgrade else None),
    ]
    for path, value in overrides:
        if value is not None:
            jsonpaths.set_path(body, path, value)
    with output.reporting(), _connect(ctx) as client:
        if health_probe is not None:
            probe_id = probe_ref.resolve(client, resource_group, health_probe, lb)
            jsonpaths.set_path(body, (*_VM, "networkProfile", "healthProbe"), {"id": probe_id})
        response = client.send("PUT", scale_set_path(client.subscription, resource_group, name),
                               json=body)
        result = client.body(response) if no_wait else client.wait(response)
        output.emit(result, fmt, columns=SCALE_SET_COLUMNS)


# -- update --set --------------------------------------------------------------------------

Segment = setpaths.Segment


def parse_path(path: str) -> list[Segment]:
    """``a.b[0].c`` as ``["a", "b", 0, "c"]``.

    >>> parse_path("virtualMachineProfile.extensionProfile.extensions[1].name")
    ['virtualMachineProfile', 'extensionProfile', 'extensions', 1, 'name']
    """
    segments: list[Segment] = []
    for part in path.split("."):
        match = re.fullmatch(r"([^\[\]]+)((?:\[-?\d+\])*)", part)
        if match is None:
            raise typer.BadParameter(f"'{path}' is not a path like sku.capacity or "
                                     "extensions[0].name", param_hint="--set")
        segments.append(match.group(1))
        segments.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", match.group(2)))
    return segments


def parse_assignment(text: str) -> tuple[list[Segment], Any]:
    """``path=value``; the value is JSON when it parses, else the string itself.

    >>> parse_assignment("sku.capacity=5"), parse_assignment("upgradePolicy.mode=Rolling")
    ((['sku', 'capacity'], 5), (['upgradePolicy', 'mode'], 'Rolling'))
    """
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise typer.BadParameter(f"'{text}' is not path=value, e.g. sku.capacity=5",
                                 param_hint="--set")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parse_path(path.strip()), value


def _key(node: dict[str, Any], key: str) -> str:
    """The existing key that matches ``key`` case-insensitively, else ``key`` as written."""
    return next((k for k in node if k.lower() == key.lower()), key)


def resolve_path(resource: dict[str, Any], segments: list[Segment]) -> list[Segment]:
    """The path spelled as the resource spells it, stepping into ``properties`` like az.

    az edits SDK models, which flatten ``properties``; so at the resource and at
    every sub-resource (an object with a ``properties`` object), a key that is
    not there is looked up under ``properties``, and a new key goes there unless
    it is an envelope key (``sku``, ``tags``, ``zones``, ...).

    >>> resolve_path({"sku": {}, "properties": {"upgradePolicy": {}}},
    ...              ["UPGRADEPOLICY", "mode"])
    ['properties', 'upgradePolicy', 'mode']
    """
    out: list[Segment] = []
    node: Any = resource
    for segment in segments:
        if isinstance(segment, int):
            out.append(segment)
            node = node[segment] if isinstance(node, list) and -len(node) <= segment < len(
                node) else None
            continue
        if not isinstance(node, dict):
            out.append(segment)
            node = None
            continue
        props = node.get("properties")
        key = _key(node, segment)
        if key not in node and isinstance(props, dict) and (
                _key(props, segment) in props or segment.lower() not in _ENVELOPE):
            out.append("properties")
            node, key = props, _key(props, segment)
        out.append(key)
        node = node.get(key)
    return out


def _assign(doc: dict[str, Any], path: list[Segment], value: Any, shown: str) -> None:
    node: Any = doc
    for here, nxt in zip(path, [*path[1:], None], strict=True):
        if isinstance(here, int):
            if not isinstance(node, list) or not -len(node) <= here < len(node):
                size = len(node) if isinstance(node, list) else "not a list"
                raise typer.BadParameter(f"{shown}: index [{here}] is out of range ({size})",
                                         param_hint="--set")
        elif not isinstance(node, dict):
            raise typer.BadParameter(f"{shown}: cannot set '{here}' inside a "
                                     f"{type(node).__name__} value", param_hint="--set")
        if nxt is None:
            node[here] = value
        else:
            if isinstance(node, dict) and node.get(here) is None:
                node[here] = {}
            node = node[here]


def build_patch(resource: dict[str, Any], assignments: list[tuple[list[Segment], Any]],
                shown: list[str] | None = None) -> dict[str, Any]:
    """The sparse PATCH body for ``--set`` assignments on ``resource`` (az's rules).

    >>> build_patch({"sku": {"capacity": 2}, "properties": {"upgradePolicy": {"mode": "Manual"}}},
    ...             [(["SKU", "Capacity"], 5), (["upgradepolicy", "mode"], "Rolling")])
    {'sku': {'capacity': 5}, 'properties': {'upgradePolicy': {'mode': 'Rolling'}}}
    """
    changed = copy.deepcopy(resource)
    patch: dict[str, Any] = {}
    for n, (segments, value) in enumerate(assignments):
        label = shown[n] if shown else setpaths.format_path(segments)
        # Refused before anything changes: the server would store a misspelt key and ignore it.
        path = setpaths.known_path(changed, resolve_path(changed, segments), label)
        _assign(changed, path, value, label)
        # PATCH replaces lists whole: send the list that holds the change.
        cut = next((i for i, s in enumerate(path) if isinstance(s, int)), len(path))
        prefix = [s for s in path[:cut] if isinstance(s, str)]
        sent: Any = changed
        for key in prefix:
            sent = sent[key]
        jsonpaths.set_path(patch, tuple(prefix), copy.deepcopy(sent))
    return patch


@app.command("update", cls=ScaleSetVerb)
def update(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="path=value, repeatable, e.g. --set sku.capacity=5 --set "
        "upgradePolicy.mode=Rolling")] = None,
    enable_auto_os_upgrade: AutoOsUpgradeOption = None,
    max_batch_instance_percent: MaxBatchOption = None,
    max_unhealthy_instance_percent: MaxUnhealthyOption = None,
    max_unhealthy_upgraded_instance_percent: MaxUnhealthyUpgradedOption = None,
    pause_time_between_batches: PauseOption = None,
    prioritize_unhealthy_instances: Annotated[str | None, typer.Option(
        metavar=verbs.BOOL_METAVAR, show_default=False,
        help="Upgrade unhealthy instances first (prioritizeUnhealthyInstances).")] = None,
    enable_cross_zone_upgrade: Annotated[str | None, typer.Option(
        metavar=verbs.BOOL_METAVAR, show_default=False,
        help="Batches may span zones (enableCrossZoneUpgrade).")] = None,
    max_surge: Annotated[str | None, typer.Option(
        metavar=verbs.BOOL_METAVAR, show_default=False,
        help="Upgrade by creating new instances, then removing old ones (maxSurge).")]
    = None,
    no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Change a scale set: GET it, apply --set and the policy flags, PATCH the changes
    with If-Match."""
    flags: list[tuple[str, tuple[str, ...], Any]] = [
        ("--enable-auto-os-upgrade", ("automaticOSUpgradePolicy", "enableAutomaticOSUpgrade"),
         verbs.truth(enable_auto_os_upgrade, "--enable-auto-os-upgrade")),
        ("--max-batch-instance-percent", ("rollingUpgradePolicy", "maxBatchInstancePercent"),
         max_batch_instance_percent),
        ("--max-unhealthy-instance-percent",
         ("rollingUpgradePolicy", "maxUnhealthyInstancePercent"), max_unhealthy_instance_percent),
        ("--max-unhealthy-upgraded-instance-percent",
         ("rollingUpgradePolicy", "maxUnhealthyUpgradedInstancePercent"),
         max_unhealthy_upgraded_instance_percent),
        ("--pause-time-between-batches", ("rollingUpgradePolicy", "pauseTimeBetweenBatches"),
         _duration(pause_time_between_batches) if pause_time_between_batches else None),
        ("--prioritize-unhealthy-instances",
         ("rollingUpgradePolicy", "prioritizeUnhealthyInstances"),
         verbs.truth(prioritize_unhealthy_instances, "--prioritize-unhealthy-instances")),
        ("--enable-cross-zone-upgrade", ("rollingUpgradePolicy", "enableCrossZoneUpgrade"),
         verbs.truth(enable_cross_zone_upgrade, "--enable-cross-zone-upgrade")),
        ("--max-surge", ("rollingUpgradePolicy", "maxSurge"),
         verbs.truth(max_surge, "--max-surge")),
    ]
    given = [(flag, ["upgradePolicy", *path], value) for flag, path, value in flags
             if value is not None]
    if not set_ and not given:
        raise typer.BadParameter("give at least one --set path=value or a policy flag such as "
                                 "--max-batch-instance-percent", param_hint="--set")
    assignments: list[tuple[list[Segment], Any]] = [parse_assignment(s) for s in set_ or []]
    assignments += [([*path], value) for _, path, value in given]
    shown = [s.partition("=")[0] for s in set_ or []] + [flag for flag, _, _ in given]
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        current = client.send("GET", path)
        resource = client.body(current)
        if not isinstance(resource, dict):
            raise ArmClientError(current.status_code, "InvalidResponse",
                                 f"GET {path} did not answer with a resource")
        patch = build_patch(resource, assignments, shown)
        etag = current.headers.get("ETag") or resource.get("etag")
        response = client.send("PATCH", path, json=patch,
                               headers={"If-Match": str(etag)} if etag else None)
        result = client.body(response) if no_wait else client.wait(response)
        output.emit(result, fmt, columns=SCALE_SET_COLUMNS)


# -- read verbs ----------------------------------------------------------------------------

@app.command("show", cls=ScaleSetVerb)
def show(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_id: Annotated[str | None, typer.Option(
        help="Show this instance instead of the scale set.")] = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show a scale set (or one of its instances)."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        if instance_id is None:
            output.emit(client.get(path), fmt, columns=SCALE_SET_COLUMNS)
        else:
            output.emit(client.get(f"{path}/virtualMachines/{quote(instance_id, safe='')}"),
                        fmt, columns=INSTANCE_COLUMNS)


@app.command("list", cls=verbs.Verb)
def list_(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option(
        "--resource-group", "-g", help="Resource group (default: the whole subscription).")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List scale sets in a resource group, or in the subscription."""
    with output.reporting(), _connect(ctx) as client:
        path = (group_path(client.subscription, resource_group) if resource_group else
                f"/subscriptions/{quote(client.subscription, safe='')}/providers/"
                "Microsoft.Compute") + "/virtualMachineScaleSets"
        output.emit(list(client.paged(path)), fmt, columns=SCALE_SET_COLUMNS)


@app.command("list-instances", cls=ScaleSetVerb)
def list_instances(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    expand: Annotated[str | None, typer.Option(help="instanceView: include instance views.")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List the instances of a scale set."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name) + "/virtualMachines"
        items = list(client.paged(path, params={"$expand": expand} if expand else None))
        output.emit(items, fmt, columns=INSTANCE_COLUMNS)


@app.command("get-instance-view", cls=ScaleSetVerb)
def get_instance_view(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_id: Annotated[str | None, typer.Option(
        help="One instance's view (default: the scale set's).")] = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show the instance view of a scale set, or of one instance."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        if instance_id is not None:
            path += f"/virtualMachines/{quote(instance_id, safe='')}"
        view = client.get(path + "/instanceView")
        rows = _view_rows(view) if output.as_rows(fmt) else view
        output.emit(rows, fmt, columns=VIEW_COLUMNS)


@app.command("get-os-upgrade-history", cls=ScaleSetVerb)
def get_os_upgrade_history(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """The last OS upgrade attempts of a scale set, newest first."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name) + "/osUpgradeHistory"
        output.emit(list(client.paged(path)), fmt, columns=HISTORY_COLUMNS)


# -- actions -------------------------------------------------------------------------------

@app.command("delete", cls=ScaleSetVerb)
def delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    no_wait: NoWaitOption = False,
) -> None:
    """Delete a scale set with its instances."""
    with output.reporting(), _connect(ctx) as client:
        response = client.send("DELETE", scale_set_path(client.subscription, resource_group,
                                                        name))
        if not no_wait:
            client.wait(response)


def _instance_ids(client: ArmClient, path: str, ids: list[str]) -> list[str]:
    """``*`` means every instance, as in az."""
    if ids != ["*"]:
        return ids
    return [str(vm["instanceId"]) for vm in client.paged(path + "/virtualMachines")]


@app.command("reimage", cls=ScaleSetVerb)
def reimage(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Give instances a fresh OS disk from the model's image (all without --instance-ids)."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        body = {"instanceIds": list(instance_ids)} if instance_ids and instance_ids != ["*"] \
            else None
        response = client.send("POST", path + "/reimage", json=body)
        if not no_wait:
            client.wait(response)


def _power_verb(ctx: typer.Context, resource_group: str, name: str, verb: str,
                instance_ids: list[str] | None, no_wait: bool, *, all_body: bool = False,
                params: dict[str, str] | None = None) -> None:
    """POST a power or instance verb as az sends it, and follow its operation.

    Without ``--instance-ids`` the verb applies to every instance; ``all_body`` sends
    ``{"instanceIds": ["*"]}`` then (what az sends for stop and restart), else no body.
    """
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        ids = list(instance_ids) if instance_ids else (["*"] if all_body else None)
        body = {"instanceIds": ids} if ids is not None else None
        response = client.send("POST", f"{path}/{verb}", json=body, params=params)
        if not no_wait:
            client.wait(response)


@app.command("start", cls=ScaleSetVerb)
def start_instances(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Start instances (all without --instance-ids); running ones stay as they are."""
    _power_verb(ctx, resource_group, name, "start", instance_ids, no_wait)


@app.command("stop", cls=ScaleSetVerb)
def stop(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
    skip_shutdown: Annotated[bool, typer.Option(
        "--skip-shutdown", help="Stop at once, without asking the processes to shut down."
    )] = False,
) -> None:
    """Power instances off, keeping their disks and addresses (powerOff)."""
    _power_verb(ctx, resource_group, name, "poweroff", instance_ids, no_wait, all_body=True,
                params={"skipShutdown": "true"} if skip_shutdown else None)


@app.command("restart", cls=ScaleSetVerb)
def restart(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Stop, then start instances (all without --instance-ids)."""
    _power_verb(ctx, resource_group, name, "restart", instance_ids, no_wait, all_body=True)


@app.command("deallocate", cls=ScaleSetVerb)
def deallocate(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Stop instances and release their addresses; disks are kept."""
    _power_verb(ctx, resource_group, name, "deallocate", instance_ids, no_wait)


@app.command("redeploy", cls=ScaleSetVerb)
def redeploy(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Move instances to a new host: new processes and address, the same disks."""
    _power_verb(ctx, resource_group, name, "redeploy", instance_ids, no_wait)


@app.command("delete-instances", cls=ScaleSetVerb)
def delete_instances(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Delete instances (capacity drops as many); '*' for all. Scale-in protection does not
    stop an explicit delete."""
    if not instance_ids:
        raise typer.BadParameter("name the instances, e.g. --instance-ids 0 3, or '*' for all",
                                 param_hint="--instance-ids")
    _power_verb(ctx, resource_group, name, "delete", instance_ids, no_wait)


@app.command("update-instances", cls=ScaleSetVerb)
def update_instances(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
) -> None:
    """Bring instances to the scale set's latest model (manual upgrade); '*' for all."""
    if not instance_ids:
        raise typer.BadParameter("name the instances, e.g. --instance-ids 0 3, or '*' for all",
                                 param_hint="--instance-ids")
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        ids = _instance_ids(client, path, list(instance_ids))
        response = client.send("POST", path + "/manualupgrade", json={"instanceIds": ids})
        if not no_wait:
            client.wait(response)


@app.command("set-protection", cls=ScaleSetVerb)
def set_protection(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_id: Annotated[str, typer.Option(help="The instance to protect.")],
    protect_from_scale_in: Annotated[bool | None, typer.Option(
        "--protect-from-scale-in/--no-protect-from-scale-in",
        help="Never remove this instance when scaling in.")] = None,
    protect_from_scale_set_actions: Annotated[bool | None, typer.Option(
        "--protect-from-scale-set-actions/--no-protect-from-scale-set-actions",
        help="Keep model updates and OS upgrades away from this instance.")] = None,
    no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Set an instance's protection policy (the other setting keeps its value)."""
    if protect_from_scale_in is None and protect_from_scale_set_actions is None:
        raise typer.BadParameter("give --protect-from-scale-in/--no-protect-from-scale-in "
                                 "and/or --protect-from-scale-set-actions/--no-...")
    with output.reporting(), _connect(ctx) as client:
        path = (scale_set_path(client.subscription, resource_group, name)
                + f"/virtualMachines/{quote(instance_id, safe='')}")
        vm = client.get(path)
        if not isinstance(vm, dict):
            raise ArmClientError(200, "InvalidResponse", f"GET {path} did not answer with a VM")
        policy = dict(lookup(vm, "properties.protectionPolicy") or {})
        policy.setdefault("protectFromScaleIn", False)
        policy.setdefault("protectFromScaleSetActions", False)
        if protect_from_scale_in is not None:
            policy["protectFromScaleIn"] = protect_from_scale_in
        if protect_from_scale_set_actions is not None:
            policy["protectFromScaleSetActions"] = protect_from_scale_set_actions
        jsonpaths.set_path(vm, ("properties", "protectionPolicy"), policy)
        response = client.send("PUT", path, json=vm)
        output.emit(client.body(response) if no_wait else client.wait(response), fmt,
                    columns=INSTANCE_COLUMNS)


# -- events --------------------------------------------------------------------------------

@app.command("events", cls=ScaleSetVerb)
def events_(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep showing events as they happen (Ctrl-C ends); "
        "reconnects after a dropped connection without missing or repeating one.")] = False,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", metavar="KIND[,KIND]", help="Only these kinds, e.g. "
        "--kind BatchStarted,RunFinished.")] = None,
    since: Annotated[str | None, typer.Option(
        metavar="TIME", help="Only events from this time (ISO 8601) or span ago "
        "(30s, 10m, 2h, 1d) on.")] = None,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", metavar="ID", help="Only the events of this rolling upgrade run.")]
    = None,
    top: Annotated[int | None, typer.Option(
        "--top", min=1, metavar="N", help="At most N events (the oldest that match).")]
    = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """What happened to the scale set, oldest first: runs, batches, gates, instances
    upgraded, failed (with the cause) or rolled back, automatic upgrades scheduled."""
    with output.reporting(), _connect(ctx) as client:
        events.show(client, scale_set_path(client.subscription, resource_group, name),
                    follow_=follow, kind=events.kinds(kind), since=since, run_id=run_id,
                    top=top, fmt=fmt)


# -- rolling-upgrade -----------------------------------------------------------------------

WatchTimeoutOption = Annotated[float | None, typer.Option(
    "--timeout", metavar="SECONDS", min=0, show_default=False,
    help="While showing the run: give up (exit 1) after this many seconds (default: none).")]

def _follow(client: ArmClient, response: Any, latest_path: str
            ) -> tuple[dict[str, Any], ArmClientError | None]:
    """Show the run's progress until it ends; its final status, and the operation's error."""
    progress = Progress(TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[counts]}"), console=Console(stderr=True),
                        auto_refresh=False)
    task = progress.add_task("Starting", total=None, counts="")

    def show(status: Any) -> Any:
        counts = lookup(status, "properties.progress") or {}
        ok, failed, busy, pending = (int(counts.get(k) or 0) for k in (
            "successfulInstanceCount", "failedInstanceCount", "inProgressInstanceCount",
            "pendingInstanceCount"))
        progress.update(task, description=str(lookup(status, "properties.runningStatus.code")),
                        total=(ok + failed + busy + pending) or None, completed=ok + failed,
                        counts=f"succeeded {ok} · failed {failed} · in progress {busy} · "
                               f"pending {pending}")
        progress.refresh()
        return status

    failure: ArmClientError | None = None
    with progress:
        try:
            client.wait(response, on_poll=lambda _: show(client.get(latest_path)))
        except ArmClientError as exc:
            failure = exc
        latest = show(client.get(latest_path))
        # The operation may end when the run was accepted (real ARM): keep watching the run.
        while failure is None and lookup(latest, "properties.runningStatus.code") in RUNNING:
            client.sleep(client.default_poll_interval)
            latest = show(client.get(latest_path))
    return latest, failure


@rolling_upgrade.command("start", cls=ScaleSetVerb)
def start(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    wait: Annotated[bool | None, typer.Option(
        "--wait/--no-wait",
        help="--wait: show progress until the run ends (exit 1 unless it Completed). "
             "--no-wait: return at once. Default: wait quietly, then print the status.")]
    = None,
    timeout: WatchTimeoutOption = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Start a rolling upgrade to the latest OS image version now."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        latest_path = path + "/rollingUpgrades/latest"
        response = client.send("POST", path + "/osRollingUpgrade")
        if wait is False:
            output.error(f"started; follow it with: scaleset vmss rolling-upgrade get-latest "
                         f"-g {resource_group} -n {name}")
            return
        if wait is None:
            client.wait(response)
            output.emit(client.get(latest_path), fmt, columns=ROLLING_UPGRADE_COLUMNS)
            return
        source = watch.rollout_source(client, path)
        if source is not None:  # the live view: batches, instances, gates
            view = watch.follow(client, source, timeout=timeout)
            output.emit(client.get(latest_path), fmt, columns=ROLLING_UPGRADE_COLUMNS)
            watch.conclude(view)
            return
        latest, failure = _follow(client, response, latest_path)
        output.emit(latest, fmt, columns=ROLLING_UPGRADE_COLUMNS)
        code = lookup(latest, "properties.runningStatus.code")
        if code == "Completed" and failure is None:
            return
        error = lookup(latest, "properties.error") or {}
        if failure is not None:
            output.error(f"error ({failure.code}): {failure.message}")
        elif error.get("code"):
            output.error(f"error ({error['code']}): {error.get('message', '')}")
        else:
            output.error(f"error (RollingUpgrade{code}): the rolling upgrade ended {code}")
        raise typer.Exit(1)


@rolling_upgrade.command("get-latest", cls=ScaleSetVerb)
def get_latest(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    watch_: Annotated[bool, typer.Option(
        "--watch", "-w", help="Show the run live (batches, instances, gates; plain lines "
        "when not a terminal) until it ends, automatic or manual; then print its status; "
        "exit 1 unless it Completed. With no run yet, wait for one.")] = False,
    timeout: WatchTimeoutOption = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """The status of the scale set's latest rolling upgrade."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        view = watch.follow(client, watch.source_for(client, path), timeout=timeout) \
            if watch_ else None
        output.emit(client.get(path + "/rollingUpgrades/latest"), fmt,
                    columns=ROLLING_UPGRADE_COLUMNS)
        if view is not None:
            watch.conclude(view)


@rolling_upgrade.command("wait", cls=ScaleSetVerb)
def wait_(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    version: Annotated[str | None, typer.Option(
        "--for-version", metavar="VERSION",
        help="Wait for the run towards this image version (it may not have started "
             "yet: rollout delays, maintenance windows, booting instances). "
             "Default: the latest run.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", min=0,
        help="Give up (exit 1) after this many seconds.")] = 3600.0,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Wait until a rolling upgrade has ended, saying on stderr what holds it meanwhile;
    print its status; exit 1 unless it Completed."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        run = rolling_wait.wait_for_run(client, path, version=version, timeout=timeout,
                                        report=output.error)
        output.emit(run, fmt, columns=ROLLING_UPGRADE_COLUMNS)
        code = lookup(run, "properties.runningStatus.code")
        if code != "Completed":
            error = lookup(run, "properties.error") or {}
            output.error(f"error ({error.get('code') or 'RollingUpgrade' + str(code)}): "
                         f"{error.get('message') or f'the rolling upgrade ended {code}'}")
            raise typer.Exit(1)


@rolling_upgrade.command("cancel", cls=ScaleSetVerb)
def cancel(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    no_wait: NoWaitOption = False,
    timeout: WatchTimeoutOption = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Stop the running upgrade after its current batch, showing it until it has stopped;
    then print its status."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        response = client.send("POST", path + "/rollingUpgrades/cancel")
        if no_wait:
            return
        source = watch.rollout_source(client, path)
        if source is not None:
            view = watch.follow(client, source, timeout=timeout)
            output.emit(client.get(path + "/rollingUpgrades/latest"), fmt,
                        columns=ROLLING_UPGRADE_COLUMNS)
            output.error(watch.concluded_cancel(view))
            return
        client.wait(response)
        output.emit(client.get(path + "/rollingUpgrades/latest"), fmt,
                    columns=ROLLING_UPGRADE_COLUMNS)


@rolling_upgrade.command("approve", cls=ScaleSetVerb)
def approve(
    ctx: typer.Context, resource_group: ResourceGroupOption, name: NameOption,
    instance_ids: InstanceIdsOption = None, no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Start the OS upgrade osRollingUpgradeDeferral holds (approveRollingUpgrade); then,
    unless --no-wait, wait for it to end and print its status."""
    with output.reporting(), _connect(ctx) as client:
        path = scale_set_path(client.subscription, resource_group, name)
        body = {"instanceIds": list(instance_ids)} if instance_ids and instance_ids != ["*"] \
            else None
        response = client.send("POST", path + "/approveRollingUpgrade", json=body)
        if no_wait:
            output.error(f"approved; follow it with: scaleset vmss rolling-upgrade get-latest "
                         f"-g {resource_group} -n {name}")
            return
        client.wait(response)
        output.emit(client.get(path + "/rollingUpgrades/latest"), fmt,
                    columns=ROLLING_UPGRADE_COLUMNS)
