"""How client verbs print: ``--output json|table|tsv``, and errors on stderr.

* ``json`` (default): the server's JSON, pretty-printed, on stdout.
* ``table``: a Rich table of the verb's columns; a verb without columns shows
  the top-level scalar fields, as az does.
* ``tsv``: the same columns, tab-separated, no header (for ``cut`` and ``read``).

Failures print ``error (Code): message`` on stderr and exit 1 (``reporting``).
Usage mistakes raise ``typer.BadParameter`` and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from scaleset.cli.client import ClientError
from scaleset.cli.clientconfig import ClientConfigError


class OutputFormat(StrEnum):
    json = "json"
    table = "table"
    tsv = "tsv"
    none = "none"
    """Print nothing (errors still go to stderr), as ``az ... -o none``."""


OutputOption = Annotated[OutputFormat, typer.Option(
    "--output", "-o", case_sensitive=False, help="Output format.",
    rich_help_panel="Output")]


def lookup(item: Any, path: str) -> Any:
    """The value at a dotted path (``[n]`` indexes lists); None when absent.

    >>> lookup({"sku": {"capacity": 3}, "zones": ["1", "2"]}, "sku.capacity")
    3
    >>> lookup({"zones": ["1", "2"]}, "zones[1]"), lookup({}, "properties.x")
    ('2', None)
    """
    node = item
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            node = node[index] if isinstance(node, list) and -len(node) <= index < len(node) \
                else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


@dataclass(frozen=True)
class Column:
    """A header and how to get the cell from one item (a dotted path or a function)."""

    header: str
    get: str | Callable[[Any], Any]

    def value(self, item: Any) -> Any:
        return lookup(item, self.get) if isinstance(self.get, str) else self.get(item)


def _scalar_columns(items: Sequence[Any]) -> list[Column]:
    headers: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            for key, value in item.items():
                if not isinstance(value, Mapping | list):
                    headers.setdefault(str(key))
    return [Column(h[:1].upper() + h[1:], h) for h in headers]


def cell(value: Any) -> str:
    """A value as one table or tsv cell (compact JSON for objects and lists)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit(data: Any, fmt: OutputFormat, *, columns: Sequence[Column] | None = None,
         console: Console | None = None) -> None:
    """Print a verb's result. ``None`` (e.g. after delete) prints nothing."""
    if data is None or fmt is OutputFormat.none:
        return
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    items: list[Any] = list(data) if isinstance(data, list) else [data]
    chosen = list(columns) if columns else _scalar_columns(items)
    rows = [[cell(c.value(item)) for c in chosen] for item in items]
    if fmt is OutputFormat.tsv:
        for row in rows:
            sys.stdout.write("\t".join(v.replace("\t", " ").replace("\n", " ") for v in row)
                             + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for column in chosen:
        table.add_column(column.header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    (console or Console(highlight=False)).print(table)


def error(message: str) -> None:
    """One line on stderr, without Rich markup (messages may hold brackets)."""
    typer.echo(message, err=True)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn client failures into ``error (Code): message`` on stderr and exit code 1."""
    try:
        yield
    except (ClientError, ClientConfigError) as exc:
        error(f"error ({exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
