"""The command class of the client verbs: the habits az users bring, in one place.

Every client verb is declared with ``cls=Verb`` (or ``cls=by_ids(...)``) and so gets:

* ``--query`` (JMESPath) when it prints output (has an ``fmt`` parameter): the
  expression is checked, then applied by ``output.emit`` (``output.querying``).
* ``-h`` as well as ``--help``, and help in plain Click formatting, wrapped at
  the terminal's width without breaking words: Rich's help panels cut long
  option names (``--upgrade-policy-mo…``) at 80 columns.
* several values after one flag for repeatable options, az-style:
  ``--zones 1 2 3`` is ``--zones 1 --zones 2 --zones 3``.
* az's three-state booleans (options whose metavar is :data:`BOOL_METAVAR`):
  ``--enable-auto-os-upgrade`` alone means true, ``--enable-auto-os-upgrade
  false`` (or ``=false``) says so; :func:`truth` reads the value.
* with :func:`by_ids`, ``--ids ID [ID ...]``: full resource ids instead of
  ``-g``/``-n`` (and the other name options). The id's resource group and
  names fill those parameters and its subscription becomes the connection's,
  as az does; several ids run the verb once each and print one list.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Final

import typer
import typer.main

# Typer (0.29 on) carries its own copy of Click and formats help with it; the formatter
# must subclass that copy's, not the click package's.
from typer import _click as click
from typer.core import TyperCommand, TyperOption

from scaleset.cli import connection, output

HELP_OPTION_NAMES: Final = ["-h", "--help"]
BOOL_METAVAR: Final = "[true|false]"
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})


def truth(value: str | None, option: str) -> bool | None:
    """An az three-state flag's value: None when not given.

    >>> truth("true", "--x"), truth("False", "--x"), truth(None, "--x")
    (True, False, None)
    """
    if value is None:
        return None
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise typer.BadParameter(f"'{value}' is not true or false", param_hint=option)


class HelpFormatter(click.HelpFormatter):
    """Click's help layout, but a word (an option name, a JSON path) is never broken."""

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30,
                 col_spacing: int = 2) -> None:
        rows = list(rows)
        first = min(max((len(term) for term, _ in rows), default=0), col_max)
        indent = self.current_indent + first + col_spacing
        text_width = max(self.width - indent, 20)
        for term, text in rows:
            prefix = " " * self.current_indent + term
            lines = textwrap.wrap(text, text_width, break_long_words=False,
                                  break_on_hyphens=False) if text else []
            if len(term) <= first and lines:
                self.write(f"{prefix:<{indent}}{lines[0]}\n")
                lines = lines[1:]
            else:
                self.write(prefix + "\n")
            for line in lines:
                self.write(" " * indent + line + "\n")


class HelpContext(typer.Context):
    formatter_class = HelpFormatter


def _resource_id(text: str, kind: str) -> tuple[str, str, list[str]]:
    """(subscription, resource group, names) of a resource id of type ``kind``.

    >>> _resource_id("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/"
    ...              "loadBalancers/lb/probes/http", "Microsoft.Network/loadBalancers/probes")
    ('s1', 'rg', ['lb', 'http'])
    """
    namespace, *types = kind.split("/")
    shape = (f"/subscriptions/SUB/resourceGroups/GROUP/providers/{namespace}/"
             + "/".join(f"{t}/NAME" for t in types))
    parts = text.strip().strip("/").split("/")
    fixed = [parts[i].lower() if i < len(parts) else "" for i in (0, 2, 4, 5)]
    kinds = [p.lower() for p in parts[6::2]]
    if (len(parts) != 6 + 2 * len(types) or not all(parts)
            or fixed != ["subscriptions", "resourcegroups", "providers", namespace.lower()]
            or kinds != [t.lower() for t in types]):
        raise typer.BadParameter(f"'{text}' is not a {kind} id; expected {shape}",
                                 param_hint="--ids")
    return parts[1], parts[3], parts[7::2]


def typer_param(name: str, annotation: Any) -> Any:
    """The parameter Typer makes of ``name: annotation = None`` (Typer builds its own
    options; this way they are the kind its parser expects)."""
    def holder(**_: Any) -> None:
        """Never called: only its signature is read."""
    holder.__signature__ = inspect.Signature([inspect.Parameter(  # type: ignore[attr-defined]
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)])
    holder.__annotations__ = {name: annotation, "return": None}
    app = typer.Typer()
    app.command()(holder)
    return typer.main.get_command(app).params[0]


def _query_option() -> Any:
    return typer_param("query", Annotated[str | None, typer.Option(
        "--query", metavar="JMESPATH", show_default=False,
        help="JMESPath query applied to the output, as in az (https://jmespath.org).")])


def _ids_option(kind: str, flags: str) -> Any:
    return typer_param("ids", Annotated[list[str] | None, typer.Option(
        "--ids", metavar="ID", show_default=False,
        help=f"One or more {kind.rsplit('/', 1)[-1]} resource ids, instead of {flags}.")])


class PlainHelp(TyperCommand):
    """A command whose help is plain Click text wrapped whole-word (see the module doc);
    ``-h`` works as ``--help``."""

    context_class = HelpContext

    def __init__(self, **kwargs: Any) -> None:
        kwargs["rich_markup_mode"] = None
        settings = dict(kwargs.get("context_settings") or {})
        settings.setdefault("help_option_names", HELP_OPTION_NAMES)
        kwargs["context_settings"] = settings
        super().__init__(**kwargs)


class Verb(PlainHelp):
    """A client verb (see the module doc)."""

    id_kind: ClassVar[str] = ""
    """``Namespace/type[/subtype...]`` of the resource ``--ids`` names; empty: no --ids."""
    id_params: ClassVar[tuple[str, ...]] = ()
    """The parameters an id fills: the resource group's first, then one per name."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        names = [p.name for p in self.params]
        if "fmt" in names:
            self.params.insert(names.index("fmt") + 1, _query_option())
        if self.id_kind:
            flags = self._id_flags()
            for param in self.params:
                if param.name in self.id_params:
                    param.required = False
                    if isinstance(param, TyperOption):
                        param.help = f"{param.help or ''} Required unless --ids.".strip()
            self.params.insert(0, _ids_option(self.id_kind, flags))

    def _id_flags(self) -> str:
        return ", ".join(p.opts[0] for p in self.params if p.name in self.id_params
                        and p.opts and p.opts[0].startswith("-"))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        multi = {opt for p in self.params if isinstance(p, TyperOption)
                 and p.multiple for opt in p.opts}
        three_state = {opt for p in self.params if isinstance(p, TyperOption)
                       and p.metavar == BOOL_METAVAR for opt in p.opts}
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            out.append(arg)
            i += 1
            if arg == "--":
                out.extend(args[i:])
                break
            if arg in three_state and (i >= len(args) or args[i].lower() not in _TRUE | _FALSE):
                out.append("true")  # a bare flag, as az's three-state flags take it
            if arg in multi and i < len(args):
                out.append(args[i])
                i += 1
                while i < len(args) and not args[i].startswith("-"):
                    out.extend((arg, args[i]))
                    i += 1
        return super().parse_args(ctx, out)

    def invoke(self, ctx: click.Context) -> Any:
        ids: tuple[str, ...] = tuple(ctx.params.pop("ids", None) or ())
        with output.querying(ctx.params.pop("query", None)):
            if not self.id_kind:
                return super().invoke(ctx)
            given = [name for name in self.id_params if ctx.params.get(name) is not None]
            if not ids:
                missing = [p for p in self.params if p.name in self.id_params
                           and ctx.params.get(p.name or "") is None]
                if missing:
                    names = " / ".join(f"'{o}'" for o in missing[0].opts)
                    raise typer.BadParameter("required unless --ids is given",
                                             param_hint=names)
                return super().invoke(ctx)
            if given:
                raise typer.BadParameter(f"it names the resource; leave out "
                                         f"{self._id_flags()}", param_hint="--ids")
            targets = [_resource_id(text, self.id_kind) for text in ids]
            if len(targets) == 1:
                return self._invoke_on(ctx, *targets[0])
            with output.collecting():
                for target in targets:
                    self._invoke_on(ctx, *target)
            return None

    def _invoke_on(self, ctx: click.Context, subscription: str, group: str,
                   names: list[str]) -> Any:
        connection.options(ctx, subscription=subscription)  # type: ignore[arg-type]
        ctx.params.update(zip(self.id_params, [group, *names], strict=True))
        return super().invoke(ctx)


def by_ids(kind: str, *params: str) -> type[Verb]:
    """A :class:`Verb` with ``--ids`` for resources of ``kind``, filling ``params``.

    >>> by_ids("Microsoft.Compute/virtualMachineScaleSets").id_params
    ('resource_group', 'name')
    """
    chosen = params or ("resource_group", "name")
    types = kind.split("/")[1:]
    if len(chosen) != 1 + len(types):
        raise ValueError(f"{kind} has {len(types)} names; give the group and as many params")
    label = "".join(t[:1].upper() + t[1:] for t in types)
    return type(f"{label}Verb", (Verb,), {"id_kind": kind, "id_params": chosen})
