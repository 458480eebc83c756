"""``scaleset``: the command-line entry point. Each verb lives in its own module."""

from __future__ import annotations

from typing import Any

import typer.main

from scaleset.cli import connection, verbs
from scaleset.cli import demo as demo_cmd
from scaleset.cli import image as image_cmd
from scaleset.cli import network as network_cmd
from scaleset.cli import secrets as secrets_cmd
from scaleset.cli import serve as serve_cmd
from scaleset.cli import sf as sf_cmd
from scaleset.cli import sig as sig_cmd
from scaleset.cli import simulate as simulate_cmd
from scaleset.cli import sp as sp_cmd
from scaleset.cli import token as token_cmd
from scaleset.cli import vmss as vmss_cmd
from scaleset.cli import version as version_opt
from scaleset.cli import vmss_network  # noqa: F401  (registers its verbs on vmss)

app = connection.client_app(
    name="scaleset",
    help="A control plane for virtual machine scale sets with automatic OS image upgrades.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every verb
)
app.command("simulate", cls=verbs.PlainHelp)(simulate_cmd.simulate)
app.command("serve", cls=verbs.PlainHelp)(serve_cmd.serve)
app.command("demo", cls=verbs.PlainHelp)(demo_cmd.demo)
app.add_typer(vmss_cmd.app, name="vmss")
app.add_typer(image_cmd.app, name="vm")
app.add_typer(image_cmd.images, name="image")  # `scaleset image ...` = `scaleset vm image ...`
app.add_typer(network_cmd.app, name="network")
app.add_typer(sig_cmd.app, name="sig")
app.add_typer(sf_cmd.app, name="sf")
app.add_typer(token_cmd.app, name="token")
app.add_typer(sp_cmd.app, name="sp")
app.add_typer(secrets_cmd.app, name="secrets")


def command() -> Any:
    """The root command with ``--version`` (the root's callback is the connection options',
    so the flag is added to the command built from ``app``)."""
    root = typer.main.get_command(app)
    root.params.append(version_opt.option())
    return root


def main() -> None:
    command()()
