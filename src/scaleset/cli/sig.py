"""``scaleset sig ...``: galleries, image definitions and versions, like ``az sig``.

The usual order: ``sig create`` (a gallery), ``sig image-definition create``
(its OS type and publisher/offer/sku), then ``sig image-version create
--source DIR_OR_TGZ`` for each version, replicated to ``--target-regions``
(the gallery's region by default). A scale set whose ``imageReference.id`` is
the image definition's id (``vmss create --image <that id>``) runs its latest
version, and upgrades itself, with automatic OS upgrade, once a newer one is
replicated to its region. Requests carry the newest Gallery api-version.

``image-version create`` and ``update`` wait until replication has ended
(``--no-wait``: return at once); ``image-version wait --replicated`` waits
later.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer

from scaleset.api.versions import GALLERY
from scaleset.cli import connection, output, verbs
from scaleset.cli.client import ArmClient, ArmClientError
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import Column, OutputFormat, OutputOption, lookup

API_VERSION: Final = GALLERY[-1]
"""The newest Gallery api-version the server accepts."""
PARAMS: Final = {"api-version": API_VERSION}
DEFAULT_LOCATION: Final = "westus"
STORAGE_TYPES: Final = ("Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS")

app = connection.client_app(name="sig",
                            help="Galleries of OS images replicated to regions (like az sig).",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)
definitions = typer.Typer(name="image-definition", no_args_is_help=True,
                          help="Image definitions: OS type and publisher/offer/sku.")
versions = typer.Typer(name="image-version", no_args_is_help=True,
                       help="Image versions: their files, target regions, replication.")
app.add_typer(definitions, name="image-definition")
app.add_typer(versions, name="image-version")

GalleryVerb = verbs.by_ids("Microsoft.Compute/galleries", "resource_group", "gallery")
DefinitionVerb = verbs.by_ids("Microsoft.Compute/galleries/images", "resource_group", "gallery",
                              "definition")
VersionVerb = verbs.by_ids("Microsoft.Compute/galleries/images/versions", "resource_group",
                           "gallery", "definition", "version")

ResourceGroupOption = Annotated[str, typer.Option("--resource-group", "-g",
                                                  help="Resource group.")]
GalleryOption = Annotated[str, typer.Option("--gallery-name", "-r", help="Gallery name.")]
DefinitionOption = Annotated[str, typer.Option("--gallery-image-definition", "-i",
                                               help="Image definition name.")]
VersionOption = Annotated[str, typer.Option("--gallery-image-version", "-e",
                                            help="Version: Major.Minor.Patch, e.g. 1.2.0.")]
LocationOption = Annotated[str | None, typer.Option(
    "--location", "-l", help="Region (default: the gallery's; a new gallery: "
    f"{DEFAULT_LOCATION}).", show_default=False)]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="Return once the server accepted it; do not wait for replication.")]
TargetRegionsOption = Annotated[list[str] | None, typer.Option(
    "--target-regions", help="Regions to replicate to, each REGION[=REPLICAS[=STORAGE_TYPE]], "
    "e.g. --target-regions westus eastus=2 (default: the gallery's region).")]
ExcludedRegionsOption = Annotated[list[str] | None, typer.Option(
    "--exclude-region-from-latest", help="Target regions where this version is never "
    "'latest' (excludeFromLatest of that region).")]
EndOfLifeOption = Annotated[datetime | None, typer.Option(
    "--end-of-life-date", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"],
    help="After this date (UTC) the version is no longer 'latest'.")]


class OsType(StrEnum):
    Linux = "Linux"
    Windows = "Windows"


class OsState(StrEnum):
    Generalized = "Generalized"
    Specialized = "Specialized"


class Expand(StrEnum):
    ReplicationStatus = "ReplicationStatus"


def _replication(item: Any) -> str | None:
    regions = lookup(item, "properties.publishingProfile.targetRegions") or []
    return " ".join(str(r.get("name")) for r in regions) or None


GALLERY_COLUMNS: Final = (
    Column("Name", "name"), Column("Location", "location"),
    Column("ProvisioningState", "properties.provisioningState"),
)
DEFINITION_COLUMNS: Final = (
    Column("Name", "name"), Column("Location", "location"),
    Column("OsType", "properties.osType"), Column("OsState", "properties.osState"),
    Column("Publisher", "properties.identifier.publisher"),
    Column("Offer", "properties.identifier.offer"), Column("Sku", "properties.identifier.sku"),
)
VERSION_COLUMNS: Final = (
    Column("Name", "name"), Column("Location", "location"),
    Column("ProvisioningState", "properties.provisioningState"),
    Column("TargetRegions", _replication),
    Column("ExcludeFromLatest", "properties.publishingProfile.excludeFromLatest"),
    Column("EndOfLifeDate", "properties.publishingProfile.endOfLifeDate"),
    Column("Replication", "properties.replicationStatus.aggregatedState"),
)


def gallery_path(subscription: str, resource_group: str, gallery: str | None = None) -> str:
    path = (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.Compute/galleries")
    return path + (f"/{quote(gallery, safe='')}" if gallery else "")


def definition_path(subscription: str, resource_group: str, gallery: str,
                    definition: str | None = None) -> str:
    path = gallery_path(subscription, resource_group, gallery) + "/images"
    return path + (f"/{quote(definition, safe='')}" if definition else "")


def version_path(subscription: str, resource_group: str, gallery: str, definition: str,
                 version: str | None = None) -> str:
    path = definition_path(subscription, resource_group, gallery, definition) + "/versions"
    return path + (f"/{quote(version, safe='')}" if version else "")


def parse_target_regions(values: list[str]) -> list[dict[str, Any]]:
    """``REGION[=REPLICAS[=STORAGE_TYPE]]`` values (also space- or comma-separated in one).

    >>> parse_target_regions(["westus", "eastus=2=premium_lrs"])
    [{'name': 'westus'}, {'name': 'eastus', 'regionalReplicaCount': 2, \
'storageAccountType': 'Premium_LRS'}]
    """
    regions: list[dict[str, Any]] = []
    for value in values:
        for item in value.replace(",", " ").split():
            parts = item.split("=")
            if len(parts) > 3 or not parts[0]:
                raise typer.BadParameter(f"'{item}' is not REGION[=REPLICAS[=STORAGE_TYPE]]",
                                         param_hint="--target-regions")
            region: dict[str, Any] = {"name": parts[0]}
            if len(parts) > 1:
                if not parts[1].isdigit():
                    raise typer.BadParameter(f"replica count '{parts[1]}' of '{item}' is not a "
                                             "number", param_hint="--target-regions")
                region["regionalReplicaCount"] = int(parts[1])
            if len(parts) > 2:
                known = {t.lower(): t for t in STORAGE_TYPES}
                if parts[2].lower() not in known:
                    raise typer.BadParameter(
                        f"storage type '{parts[2]}' of '{item}' is not one of "
                        f"{', '.join(STORAGE_TYPES)}", param_hint="--target-regions")
                region["storageAccountType"] = known[parts[2].lower()]
            regions.append(region)
    return regions


def _with_exclusions(regions: list[dict[str, Any]], excluded: list[str]) -> list[dict[str, Any]]:
    wanted = {e.replace(" ", "").lower() for e in excluded}
    named = {str(r["name"]).replace(" ", "").lower() for r in regions}
    missing = sorted(wanted - named)
    if missing:
        raise typer.BadParameter(f"{', '.join(missing)} is not among the target regions",
                                 param_hint="--exclude-region-from-latest")
    for region in regions:
        if str(region["name"]).replace(" ", "").lower() in wanted:
            region["excludeFromLatest"] = True
    return regions


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(client: ArmClient, path: str, body: dict[str, Any], no_wait: bool = False) -> Any:
    response = client.send("PUT", path, params=PARAMS, json=body)
    return client.body(response) if no_wait else client.wait(response)


def _gallery_location(client: ArmClient, resource_group: str, gallery: str) -> str:
    found = client.get(gallery_path(client.subscription, resource_group, gallery),
                       params=PARAMS)
    return str(found["location"])


# -- galleries ------------------------------------------------------------------------------

@app.command("create", cls=GalleryVerb)
def create(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    location: LocationOption = None,
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
    no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Create a gallery (run again: its description changes, its location cannot)."""
    body: dict[str, Any] = {"location": location or DEFAULT_LOCATION, "properties": {}}
    if description is not None:
        body["properties"]["description"] = description
    with output.reporting(), _connect(ctx) as client:
        path = gallery_path(client.subscription, resource_group, gallery)
        output.emit(_put(client, path, body, no_wait), fmt, columns=GALLERY_COLUMNS)


@app.command("show", cls=GalleryVerb)
def show(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show a gallery."""
    with output.reporting(), _connect(ctx) as client:
        output.emit(client.get(gallery_path(client.subscription, resource_group, gallery),
                               params=PARAMS), fmt, columns=GALLERY_COLUMNS)


@app.command("list", cls=verbs.Verb)
def list_(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option(
        "--resource-group", "-g", help="Resource group (default: the whole subscription).")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List galleries in a resource group, or in the subscription."""
    with output.reporting(), _connect(ctx) as client:
        path = gallery_path(client.subscription, resource_group) if resource_group else (
            f"/subscriptions/{quote(client.subscription, safe='')}/providers/"
            "Microsoft.Compute/galleries")
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=GALLERY_COLUMNS)


@app.command("delete", cls=GalleryVerb)
def delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
) -> None:
    """Delete a gallery (refused while it holds image definitions)."""
    with output.reporting(), _connect(ctx) as client:
        client.send("DELETE", gallery_path(client.subscription, resource_group, gallery),
                    params=PARAMS)


# -- image definitions ----------------------------------------------------------------------

@definitions.command("create", cls=DefinitionVerb)
def definition_create(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption,
    os_type: Annotated[OsType, typer.Option(case_sensitive=False, help="Linux or Windows.")],
    publisher: Annotated[str, typer.Option(help="The identifier's publisher.")],
    offer: Annotated[str, typer.Option(help="The identifier's offer.")],
    sku: Annotated[str, typer.Option(help="The identifier's sku.")],
    os_state: Annotated[OsState, typer.Option(case_sensitive=False)] = OsState.Generalized,
    location: LocationOption = None,
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
    no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Create an image definition (its OS type, state and identifier never change)."""
    props: dict[str, Any] = {"osType": os_type.value, "osState": os_state.value,
                             "identifier": {"publisher": publisher, "offer": offer, "sku": sku}}
    if description is not None:
        props["description"] = description
    with output.reporting(), _connect(ctx) as client:
        where = location or _gallery_location(client, resource_group, gallery)
        path = definition_path(client.subscription, resource_group, gallery, definition)
        output.emit(_put(client, path, {"location": where, "properties": props}, no_wait), fmt,
                    columns=DEFINITION_COLUMNS)


@definitions.command("show", cls=DefinitionVerb)
def definition_show(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show an image definition (its id is what ``vmss create --image`` takes for 'latest')."""
    with output.reporting(), _connect(ctx) as client:
        path = definition_path(client.subscription, resource_group, gallery, definition)
        output.emit(client.get(path, params=PARAMS), fmt, columns=DEFINITION_COLUMNS)


@definitions.command("list", cls=GalleryVerb)
def definition_list(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List the image definitions of a gallery."""
    with output.reporting(), _connect(ctx) as client:
        path = definition_path(client.subscription, resource_group, gallery)
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=DEFINITION_COLUMNS)


@definitions.command("delete", cls=DefinitionVerb)
def definition_delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption,
) -> None:
    """Delete an image definition (refused while it has versions)."""
    with output.reporting(), _connect(ctx) as client:
        client.send("DELETE", definition_path(client.subscription, resource_group, gallery,
                                              definition), params=PARAMS)


# -- image versions -------------------------------------------------------------------------

@versions.command("create", cls=VersionVerb)
def version_create(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption, version: VersionOption,
    source: Annotated[Path | None, typer.Option(
        help="The image: a directory or .tar.gz holding image.json and its files (the "
             "server copies it into its artifact store).", exists=True)] = None,
    source_uri: Annotated[str | None, typer.Option(
        help="Or: an http(s):// or file:// URL of a .tar.gz the server downloads.")] = None,
    target_regions: TargetRegionsOption = None,
    exclude_region_from_latest: ExcludedRegionsOption = None,
    exclude_from_latest: Annotated[bool, typer.Option(
        "--exclude-from-latest", help="Never 'latest' anywhere (pin it to use it).")] = False,
    end_of_life_date: EndOfLifeOption = None,
    location: LocationOption = None, no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Publish an image version and replicate it to its target regions."""
    if source is not None and source_uri is not None:
        raise typer.BadParameter("give --source or --source-uri, not both")
    profile: dict[str, Any] = {"excludeFromLatest": exclude_from_latest}
    regions = parse_target_regions(target_regions or [])
    if exclude_region_from_latest:
        regions = _with_exclusions(regions, exclude_region_from_latest)
    if regions:
        profile["targetRegions"] = regions
    if end_of_life_date is not None:
        profile["endOfLifeDate"] = _iso(end_of_life_date)
    props: dict[str, Any] = {"publishingProfile": profile}
    if source is not None:
        props["storageProfile"] = {"source": {"path": str(source.resolve())}}
    elif source_uri is not None:
        props["storageProfile"] = {"source": {"uri": source_uri}}
    with output.reporting(), _connect(ctx) as client:
        where = location or _gallery_location(client, resource_group, gallery)
        path = version_path(client.subscription, resource_group, gallery, definition, version)
        output.emit(_put(client, path, {"location": where, "properties": props}, no_wait),
                    fmt, columns=VERSION_COLUMNS)


@versions.command("update", cls=VersionVerb)
def version_update(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption, version: VersionOption,
    target_regions: TargetRegionsOption = None,
    exclude_region_from_latest: ExcludedRegionsOption = None,
    exclude_from_latest: Annotated[bool | None, typer.Option(
        "--exclude-from-latest/--include-in-latest",
        help="Exclude the version from 'latest' everywhere, or include it again.")] = None,
    end_of_life_date: EndOfLifeOption = None, no_wait: NoWaitOption = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Change a version's target regions, exclusion from latest or end-of-life date (its
    files never change)."""
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, resource_group, gallery, definition, version)
        current = client.get(path, params=PARAMS)
        props = dict(current.get("properties") or {})
        for read_only in ("provisioningState", "replicationStatus", "artifact"):
            props.pop(read_only, None)
        profile = dict(props.get("publishingProfile") or {})
        profile.pop("publishedDate", None)
        if target_regions:
            profile["targetRegions"] = parse_target_regions(target_regions)
        if exclude_region_from_latest:
            profile["targetRegions"] = _with_exclusions(
                [dict(r) for r in profile.get("targetRegions") or []],
                exclude_region_from_latest)
        if exclude_from_latest is not None:
            profile["excludeFromLatest"] = exclude_from_latest
        if end_of_life_date is not None:
            profile["endOfLifeDate"] = _iso(end_of_life_date)
        props["publishingProfile"] = profile
        body = {"location": current["location"], "properties": props}
        if current.get("tags") is not None:
            body["tags"] = current["tags"]
        output.emit(_put(client, path, body, no_wait), fmt, columns=VERSION_COLUMNS)


@versions.command("show", cls=VersionVerb)
def version_show(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption, version: VersionOption,
    expand: Annotated[Expand | None, typer.Option(
        case_sensitive=False, help="ReplicationStatus: the replication in every region.")]
    = None,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show an image version (``--expand ReplicationStatus`` for its replication)."""
    params = {**PARAMS, **({"$expand": expand.value} if expand else {})}
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, resource_group, gallery, definition, version)
        output.emit(client.get(path, params=params), fmt, columns=VERSION_COLUMNS)


@versions.command("list", cls=DefinitionVerb)
def version_list(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List the versions of an image definition, oldest first."""
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, resource_group, gallery, definition)
        output.emit(list(client.paged(path, params=PARAMS)), fmt, columns=VERSION_COLUMNS)


@versions.command("delete", cls=VersionVerb)
def version_delete(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption, version: VersionOption,
) -> None:
    """Delete an image version (refused while a scale set pins it)."""
    with output.reporting(), _connect(ctx) as client:
        client.send("DELETE", version_path(client.subscription, resource_group, gallery,
                                           definition, version), params=PARAMS)


POLL_SECONDS: Final = 1.0


@versions.command("wait", cls=VersionVerb)
def version_wait(
    ctx: typer.Context, resource_group: ResourceGroupOption, gallery: GalleryOption,
    definition: DefinitionOption, version: VersionOption,
    replicated: Annotated[bool, typer.Option(
        "--replicated", help="Until replication to every target region has ended.")] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.", min=0)]
    = 3600,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Wait until the version is replicated everywhere (exit 1 if a region failed, or on
    timeout); prints its replication status."""
    if not replicated:
        raise typer.BadParameter("say what to wait for: --replicated")
    params = {**PARAMS, "$expand": Expand.ReplicationStatus.value}
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, resource_group, gallery, definition, version)
        polls = int(timeout // POLL_SECONDS)
        while True:
            found = client.get(path, params=params)
            status = lookup(found, "properties.replicationStatus") or {}
            state = status.get("aggregatedState")
            if state == "Completed":
                output.emit(status, fmt)
                return
            if state == "Failed":
                failed = "; ".join(f"{s.get('region')}: {s.get('details')}"
                                   for s in status.get("summary") or []
                                   if s.get("state") == "Failed")
                raise ArmClientError(200, "ReplicationFailed",
                                     f"replication of {version} failed ({failed}); run "
                                     "'image-version update' to retry the failed regions")
            if polls <= 0:
                raise ArmClientError(200, "Timeout",
                                     f"{version} is not replicated after {timeout:g} s "
                                     f"(aggregatedState {state})")
            polls -= 1
            client.sleep(POLL_SECONDS)
