"""``scaleset --version``: the installed package's version, as ``az --version`` prints its own."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated, Any

import typer

from scaleset.cli import verbs


def current() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare checkout)."""
    try:
        return metadata.version("scaleset")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _show(value: bool | None) -> None:
    if value:
        typer.echo(f"scaleset {current()}")
        raise typer.Exit()


def option() -> Any:
    """The root's ``--version`` flag: eager, so it answers before any verb is looked up."""
    return verbs.typer_param("version", Annotated[bool | None, typer.Option(
        "--version", is_eager=True, expose_value=False, callback=_show,
        help="Print the version and exit.")])
