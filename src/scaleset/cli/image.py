"""``scaleset vm image ...``: list platform image versions (like ``az vm image list``), publish one.

Listing walks publishers -> offers -> skus -> versions in a location; each
filter matches names case-insensitively as a substring, as az's do. Without
``--all`` only the newest version of each sku is shown (one ``$orderby=name
desc&$top=1`` request per sku). Publishing is a PUT on the version's path;
``--simulate-unhealthy`` marks the version so the simulated driver never
brings it up healthy (``properties.simulation.healthy = false``), and
``--source`` records where the image's artifact lives
(``properties.source.path``, absolute) for drivers that boot real images.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer

from scaleset.cli import connection, output, verbs
from scaleset.cli.client import ArmClient
from scaleset.cli.client import connect as _connect
from scaleset.cli.output import Column, OutputFormat, OutputOption

DEFAULT_LOCATION: Final = "westus"

app = connection.client_app(name="vm", help="Virtual machines: platform images.",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)
images = connection.client_app(name="image", help="List and publish platform OS image versions.",
                               no_args_is_help=True)
app.add_typer(images, name="image")

IMAGE_COLUMNS: Final = (Column("Publisher", "publisher"), Column("Offer", "offer"),
                        Column("Sku", "sku"), Column("Version", "version"),
                        Column("Urn", "urn"))


def _simulated_healthy(item: Any) -> bool:
    return output.lookup(item, "properties.simulation.healthy") is not False


VERSION_COLUMNS: Final = (
    Column("Name", "name"), Column("Location", "location"),
    Column("OsType", "properties.osDiskImage.operatingSystem"),
    Column("AutoOSUpgrade",
           "properties.automaticOSUpgradeProperties.automaticOSUpgradeSupported"),
    Column("SimulatedHealthy", _simulated_healthy),
)

LocationOption = Annotated[str, typer.Option(
    "--location", "-l", help=f"Region (default {DEFAULT_LOCATION})", show_default=False)]


class OsType(StrEnum):
    Linux = "Linux"
    Windows = "Windows"


def location_path(subscription: str, location: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/providers/Microsoft.Compute/"
            f"locations/{quote(location, safe='')}")


def version_path(subscription: str, location: str, publisher: str, offer: str, sku: str,
                 version: str | None = None) -> str:
    path = (f"{location_path(subscription, location)}/publishers/{quote(publisher, safe='')}"
            f"/artifacttypes/vmimage/offers/{quote(offer, safe='')}/skus/{quote(sku, safe='')}"
            "/versions")
    return path + (f"/{quote(version, safe='')}" if version else "")


def _names(client: ArmClient, path: str, wanted: str | None) -> list[str]:
    listing = client.get(path)
    names = [str(item["name"]) for item in listing or [] if isinstance(item, dict)]
    return [n for n in names if wanted is None or wanted.lower() in n.lower()]


def list_images(client: ArmClient, *, location: str, publisher: str | None,
                offer: str | None, sku: str | None, every_version: bool) -> list[dict[str, Any]]:
    """az-shaped rows ``{publisher, offer, sku, version, urn}`` for the matching versions."""
    base = location_path(client.subscription, location)
    rows: list[dict[str, Any]] = []
    for p in _names(client, f"{base}/publishers", publisher):
        offers_path = f"{base}/publishers/{quote(p, safe='')}/artifacttypes/vmimage/offers"
        for o in _names(client, offers_path, offer):
            for s in _names(client, f"{offers_path}/{quote(o, safe='')}/skus", sku):
                params = None if every_version else {"$orderby": "name desc", "$top": "1"}
                listing = client.get(version_path(client.subscription, location, p, o, s),
                                     params=params)
                for item in listing or []:
                    v = str(item["name"])
                    rows.append({"publisher": p, "offer": o, "sku": s, "version": v,
                                 "urn": f"{p}:{o}:{s}:{v}"})
    return rows


@images.command("list", cls=verbs.Verb)
def list_(
    ctx: typer.Context,
    location: LocationOption = DEFAULT_LOCATION,
    publisher: Annotated[str | None, typer.Option("--publisher", "-p")] = None,
    offer: Annotated[str | None, typer.Option("--offer", "-f")] = None,
    sku: Annotated[str | None, typer.Option("--sku", "-s")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Every version, not only the newest of each sku.")] = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """List image versions in a location (filters match part of a name)."""
    with output.reporting(), _connect(ctx) as client:
        rows = list_images(client, location=location, publisher=publisher, offer=offer,
                           sku=sku, every_version=all_)
        output.emit(rows, fmt, columns=IMAGE_COLUMNS)


def _split_urn(urn: str) -> tuple[str, str, str, str]:
    parts = urn.split(":")
    if len(parts) != 4 or not all(parts):
        raise typer.BadParameter(f"'{urn}' is not Publisher:Offer:Sku:Version",
                                 param_hint="--urn")
    return parts[0], parts[1], parts[2], parts[3]


@images.command("show", cls=verbs.Verb)
def show(
    ctx: typer.Context,
    urn: Annotated[str, typer.Option(help="Publisher:Offer:Sku:Version (no 'latest').")],
    location: LocationOption = DEFAULT_LOCATION,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Show one image version."""
    publisher, offer, sku, version = _split_urn(urn)
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, location, publisher, offer, sku, version)
        output.emit(client.get(path), fmt, columns=VERSION_COLUMNS)


def publish_body(*, location: str, os_type: OsType | None, source: Path | None,
                 simulate_unhealthy: bool, source_uri: str | None = None) -> dict[str, Any]:
    """The PUT body that publishes a version.

    Without ``--os-type`` an artifact's ``image.json`` decides (Linux when there is none).

    >>> publish_body(location="westus", os_type=OsType.Linux, source=None,
    ...              simulate_unhealthy=True)["properties"]["simulation"]
    {'healthy': False}
    """
    properties: dict[str, Any] = {}
    if os_type is not None or (source is None and source_uri is None):
        properties["osDiskImage"] = {"operatingSystem": (os_type or OsType.Linux).value}
    if source is not None:
        properties["source"] = {"path": str(source.resolve())}
    elif source_uri is not None:
        properties["source"] = {"uri": source_uri}
    if simulate_unhealthy:
        properties["simulation"] = {"healthy": False}
    return {"location": location, "properties": properties}


@images.command("publish", cls=verbs.Verb)
def publish(
    ctx: typer.Context,
    publisher: Annotated[str, typer.Option("--publisher", "-p")],
    offer: Annotated[str, typer.Option("--offer", "-f")],
    sku: Annotated[str, typer.Option("--sku", "-s")],
    version: Annotated[str, typer.Option(help="Major.Minor.Build, e.g. 1.2.0.")],
    location: LocationOption = DEFAULT_LOCATION,
    os_type: Annotated[OsType | None, typer.Option(
        case_sensitive=False, help="Default: the image's image.json, else Linux.")] = None,
    source: Annotated[Path | None, typer.Option(
        help="The image: a directory or .tar.gz holding image.json and its files "
             "(the server copies it into its artifact store).",
        exists=True)] = None,
    source_uri: Annotated[str | None, typer.Option(
        help="Or: an http(s):// or file:// URL of a .tar.gz the server downloads.")] = None,
    simulate_unhealthy: Annotated[bool, typer.Option(
        "--simulate-unhealthy",
        help="Simulation: instances on this version never become healthy.")] = False,
    fmt: OutputOption = OutputFormat.json,
) -> None:
    """Publish an image version; scale sets on 'latest' of this sku may start upgrading."""
    if source is not None and source_uri is not None:
        raise typer.BadParameter("give --source or --source-uri, not both")
    body = publish_body(location=location, os_type=os_type, source=source,
                        simulate_unhealthy=simulate_unhealthy, source_uri=source_uri)
    with output.reporting(), _connect(ctx) as client:
        path = version_path(client.subscription, location, publisher, offer, sku, version)
        output.emit(client.put(path, body), fmt, columns=VERSION_COLUMNS)
