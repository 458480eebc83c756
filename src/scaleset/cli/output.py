"""How client verbs print: ``--output json|jsonc|yaml|tsv|table|none``, ``--query``.

* ``json`` (default): the server's JSON, pretty-printed, on stdout; ``jsonc``
  the same, coloured when stdout is a terminal; ``yaml`` as PyYAML writes it.
* ``table``: the verb's columns, fitted to the terminal (``cli/tables.py``); a
  verb without columns, or a ``--query`` result, shows the top-level scalar
  fields, as az does.
* ``tsv``: values only, tab-separated, one line per item, no header: the verb's
  columns (so ``cut -f1`` is the name), or, after ``--query``, the result's
  values as az prints them (an object's scalar values in order, a list's items).
* ``--query``: a JMESPath expression (the ``jmespath`` library, as az) applied to
  the result before it is printed; set for a verb by :func:`querying`.

Failures print ``error (Code): message`` on stderr and exit 1 (``reporting``).
Usage mistakes raise ``typer.BadParameter`` and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jmespath
import jmespath.exceptions
import typer
import yaml
from rich.console import Console

from scaleset.cli import tables
from scaleset.cli.client import ClientError
from scaleset.cli.clientconfig import ClientConfigError


class OutputFormat(StrEnum):
    json = "json"
    jsonc = "jsonc"
    """JSON, coloured on a terminal."""
    yaml = "yaml"
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
    priority: int = 0
    """A table too wide for the terminal drops its columns of lowest priority first."""

    def value(self, item: Any) -> Any:
        return lookup(item, self.get) if isinstance(self.get, str) else self.get(item)


def _scalar_columns(items: Sequence[Any]) -> list[Column]:
    headers: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            for key, value in item.items():
                if not isinstance(value, Mapping | list):
                    headers.setdefault(str(key))
    if not headers and any(not isinstance(i, Mapping | list) for i in items):
        return [Column("Result", lambda value: value)]  # a list of scalars, as az
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


_QUERY: ContextVar[str | None] = ContextVar("scaleset_output_query", default=None)
_COLLECTED: ContextVar[list[tuple[Any, OutputFormat, Sequence[Column] | None]] | None] = \
    ContextVar("scaleset_output_collected", default=None)


@contextmanager
def querying(expression: str | None) -> Iterator[None]:
    """Apply the JMESPath ``expression`` to whatever :func:`emit` prints inside."""
    if expression is not None:
        try:
            jmespath.compile(expression)
        except jmespath.exceptions.JMESPathError as exc:
            raise typer.BadParameter(f"'{expression}' is not a JMESPath query: {exc}",
                                     param_hint="--query") from exc
    token = _QUERY.set(expression)
    try:
        yield
    finally:
        _QUERY.reset(token)


@contextmanager
def collecting() -> Iterator[None]:
    """Gather what :func:`emit` gets inside; print it once, as one list, at the end.

    A verb run once per ``--ids`` value prints one result, as az does.
    """
    gathered: list[tuple[Any, OutputFormat, Sequence[Column] | None]] = []
    token = _COLLECTED.set(gathered)
    try:
        yield
    finally:
        _COLLECTED.reset(token)
    printed = [(data, fmt, columns) for data, fmt, columns in gathered if data is not None]
    if printed:
        emit([data for data, _, _ in printed], printed[0][1], columns=printed[0][2])


def as_rows(fmt: OutputFormat) -> bool:
    """Whether the verb's rows (not its raw result) get printed: table or tsv, no ``--query``.

    A verb whose table shows a reshaped result (an instance view as status rows)
    prints the raw one for json, jsonc, yaml and whenever a query is given, so
    the query sees what the server sent.
    """
    return fmt in (OutputFormat.table, OutputFormat.tsv) and _QUERY.get() is None


def query(data: Any, expression: str) -> Any:
    """``expression`` (JMESPath) applied to ``data``.

    >>> query([{"name": "a", "sku": {"capacity": 2}}], "[].{n: name, c: sku.capacity}")
    [{'n': 'a', 'c': 2}]
    """
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as exc:
        raise typer.BadParameter(f"'{expression}' failed: {exc}", param_hint="--query") from exc


def _tsv_value(value: Any) -> str:
    """One tsv field as az prints it: a nested list as its length, an object as nothing."""
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, Mapping):
        return ""
    return cell(value).replace("\t", " ").replace("\n", " ")


def _tsv_row(item: Any) -> str:
    if isinstance(item, Mapping):
        return "\t".join(_tsv_value(v) for v in item.values())
    if isinstance(item, list):
        return "\t".join(_tsv_value(v) for v in item)
    return _tsv_value(item)


def emit(data: Any, fmt: OutputFormat, *, columns: Sequence[Column] | None = None,
         console: Console | None = None) -> None:
    """Print a verb's result (after ``--query``). ``None`` (e.g. after delete) prints nothing."""
    gathered = _COLLECTED.get()
    if gathered is not None:
        gathered.append((data, fmt, columns))
        return
    expression = _QUERY.get()
    if expression is not None and data is not None:
        data, columns = query(data, expression), None
    if data is None or fmt is OutputFormat.none:
        return
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt is OutputFormat.jsonc:
        # soft_wrap: long values (resource ids) stay on one line, so the JSON still parses.
        (console or Console(soft_wrap=True)).print_json(json.dumps(data), indent=2)
        return
    if fmt is OutputFormat.yaml:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return
    items: list[Any] = list(data) if isinstance(data, list) else [data]
    if fmt is OutputFormat.tsv and expression is not None:
        sys.stdout.writelines(_tsv_row(item) + "\n" for item in items)
        return
    chosen = list(columns) if columns else _scalar_columns(items)
    rows = [[cell(c.value(item)) for c in chosen] for item in items]
    if fmt is OutputFormat.tsv:
        for row in rows:
            sys.stdout.write("\t".join(v.replace("\t", " ").replace("\n", " ") for v in row)
                             + "\n")
        return
    text = tables.render([c.header for c in chosen], rows,
                         console.width if console is not None else tables.terminal_width(),
                         [c.priority for c in chosen])
    (console.file if console is not None else sys.stdout).write(text)


def error(message: str) -> None:
    """One line on stderr, without Rich markup (messages may hold brackets)."""
    typer.echo(message, err=True)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn client failures into ``error (Code): message`` (with target and details) on stderr
    and exit code 1."""
    try:
        yield
    except (ClientError, ClientConfigError) as exc:
        error(exc.describe())  # code, message, target and every detail
        raise typer.Exit(1) from exc
