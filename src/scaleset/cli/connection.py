"""The connection options of the client verbs, declared here and nowhere else.

``--server`` (also spelled ``--endpoint``), ``--token``, ``--ca-file``,
``--subscription``, ``--profile``, ``--debug`` and ``--verbose`` go before the
verb, between its words or after it, as az accepts its global arguments::

    scaleset --server https://cp:8443 vmss show -g rg -n ss
    scaleset vmss show -g rg -n ss --server https://cp:8443

How: they are the parameters of one Typer callback, :func:`options`, which
every client group (and the root) registers (:func:`client_app`). Its
:class:`ClientGroup` lifts those options, wherever they stand in the group's
arguments, to the front, where the callback parses them; the verbs below never
see them. The callback records what was given in :class:`ConnectionFlags` on
the context's ``meta`` (one dict shared by a context and its children), and
``client.connect(ctx)`` reads it from there. The last one given wins, as for
any Click option.

Only flags are recorded here; :func:`scaleset.cli.clientconfig.resolve` applies
the environment and the config file below them, so a test's ``environ`` is
honoured the same way as the process environment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from scaleset.cli import clientconfig

_META_KEY: Final = "scaleset.connection"
PANEL: Final = "Connection (before or after the verb)"


@dataclass(frozen=True)
class ConnectionFlags:
    """The connection options as given on the command line (None: not given)."""

    server: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    subscription: str | None = None
    profile: str | None = None
    debug: bool = False
    verbose: bool = False


ServerOption = Annotated[str | None, typer.Option(
    "--server", "--endpoint", metavar="URL", show_default=False, rich_help_panel=PANEL,
    help=f"API base URL (env {clientconfig.ENV_SERVER}; default {clientconfig.DEFAULT_ENDPOINT}).")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", metavar="TOKEN", show_default=False, rich_help_panel=PANEL,
    help=f"Bearer token (env {clientconfig.ENV_TOKEN}).")]
CaFileOption = Annotated[str | None, typer.Option(
    "--ca-file", metavar="FILE", show_default=False, rich_help_panel=PANEL,
    help=f"CA bundle that signs the server's certificate (env {clientconfig.ENV_CA_FILE}).")]
ProfileOption = Annotated[str | None, typer.Option(
    "--profile", metavar="NAME", show_default=False, rich_help_panel=PANEL,
    help=f"Client config profile: a server's URL, CA and token (env {clientconfig.ENV_PROFILE}).")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", rich_help_panel=PANEL,
    help="Print every request and answer on stderr (headers, status, time; never a token).")]
VerboseOption = Annotated[bool, typer.Option(
    "--verbose", rich_help_panel=PANEL,
    help="Print one line per request on stderr: method, URL, status, time.")]
SubscriptionOption = Annotated[str | None, typer.Option(
    "--subscription", metavar="ID", show_default=False, rich_help_panel=PANEL,
    help=f"Subscription id (env {clientconfig.ENV_SUBSCRIPTION}).")]


def flags(ctx: typer.Context) -> ConnectionFlags:
    """The connection options given anywhere on this command line."""
    found = ctx.meta.get(_META_KEY)
    return found if isinstance(found, ConnectionFlags) else ConnectionFlags()


def options(ctx: typer.Context, server: ServerOption = None, token: TokenOption = None,
            ca_file: CaFileOption = None, subscription: SubscriptionOption = None,
            profile: ProfileOption = None, debug: DebugOption = False,
            verbose: VerboseOption = False) -> None:
    """Record the connection options for the verb (a group callback)."""
    given: dict[str, Any] = {"server": server, "token": token, "ca_file": ca_file,
                             "subscription": subscription, "profile": profile,
                             "debug": debug, "verbose": verbose}
    # A nested group parses its own (absent) copies as None or False: they must not undo
    # the root's, e.g. `scaleset --server X --debug vmss show`.
    chosen = {name: value for name, value in given.items()
              if value is not None and value is not False}
    ctx.meta[_META_KEY] = dataclasses.replace(flags(ctx), **chosen)


def lift(args: list[str], *, takes_value: set[str], flags_only: set[str]) -> list[str]:
    """``args`` with the named options (and their values) moved to the front, in order.

    Everything after ``--`` stays where it is.

    >>> lift(["show", "-g", "rg", "--server", "https://cp", "--token=t"],
    ...      takes_value={"--server", "--token"}, flags_only=set())
    ['--server', 'https://cp', '--token=t', 'show', '-g', 'rg']
    """
    lifted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if arg in flags_only or (name in takes_value and "=" in arg):
            lifted.append(arg)
        elif arg in takes_value:
            if i + 1 >= len(args):
                raise typer.BadParameter("requires a value", param_hint=arg)
            lifted.extend(args[i:i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return lifted + rest


EPILOG: Final = ("Connection options (--server, --token, --ca-file, --subscription, --profile, "
                  "--debug, --verbose) go before or after the verb; 'scaleset --help' "
                  "describes them.")


class ClientGroup(TyperGroup):
    """A group whose connection options may also follow its subcommands (see module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A verb's --help lists only its own options; this says where the others are.
        pending = list(self.commands.values())
        while pending:
            command = pending.pop()
            if isinstance(command, TyperGroup):
                pending.extend(command.commands.values())
            elif not command.epilog:
                command.epilog = EPILOG

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        takes_value: set[str] = set()
        flags_only: set[str] = set()
        for param in self.params:
            if param.name in _CALLBACK_PARAMS:
                names = {*param.opts, *param.secondary_opts}
                (flags_only if getattr(param, "is_flag", False) else takes_value).update(names)
        return super().parse_args(ctx, lift(args, takes_value=takes_value,
                                            flags_only=flags_only))


_CALLBACK_PARAMS: Final = frozenset(f.name for f in dataclasses.fields(ConnectionFlags))


def client_app(**kwargs: Any) -> typer.Typer:
    """A Typer app of client verbs: it takes the connection options before or after them.

    >>> app = client_app(name="vmss", help="Manage scale sets.")
    """
    app = typer.Typer(cls=ClientGroup, **kwargs)
    app.callback()(options)
    return app
