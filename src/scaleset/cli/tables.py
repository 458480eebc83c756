"""``-o table`` laid out to fit a width: columns dropped or narrowed, never wrapped.

The layout, in order:

1. Every column wants its widest cell (header included).
2. While the narrowest possible table (each column at its *minimum*: its
   header or :data:`MIN_CUT` cells, whichever is wider, or the whole column
   when that is shorter) is still too wide, drop
   a column: first columns with no value at all, then the one of lowest
   priority (the last of those; without priorities, the last column).
3. Narrow the widest column by one cell until the table fits.
4. A value wider than its column is cut and ends with ``…``.

Cells are one line each (newlines become spaces), so no word is ever split
across lines; widths are measured in terminal cells (``rich.cells``), so CJK
and emoji count double.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Final

from rich.cells import cell_len, set_cell_size

GAP: Final = 2
"""Spaces between two columns."""
DEFAULT_WIDTH: Final = 80
"""The width when stdout is no terminal and ``COLUMNS`` is unset (a pipe, a file, a test)."""
ELLIPSIS: Final = "…"
MIN_CUT: Final = 12
"""No value is cut shorter than this: a column that narrow is dropped instead."""


def terminal_width() -> int:
    """``COLUMNS`` when set, else the terminal's width when stdout is one, else 80."""
    given = os.environ.get("COLUMNS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending with ``…`` when something was cut.

    >>> shorten("Canonical:ubuntu:server:latest", 12), shorten("westus", 12)
    ('Canonical:u…', 'westus')
    """
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    return set_cell_size(text, width - 1).rstrip() + ELLIPSIS


def layout(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int,
           priority: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The columns shown, as (index, width) pairs in their original order.

    ``priority[i]``: the higher, the longer column ``i`` stays (default: all equal).

    >>> layout(["Name", "Image"], [["ss", "Canonical:ubuntu:server:latest"]], 20)
    [(0, 4), (1, 14)]
    >>> layout(["Name", "Empty", "Long"], [["ss", "", "x" * 30]], 20)
    [(0, 4), (2, 14)]
    >>> layout(["A", "B", "C"], [["a", "b", "c"]], 4, priority=[1, 0, 1])
    [(0, 1), (2, 1)]
    """
    count = len(headers)
    natural = [max([cell_len(headers[i]), *(cell_len(r[i]) for r in rows)]) for i in range(count)]
    minimum = [min(natural[i], max(cell_len(headers[i]), MIN_CUT)) for i in range(count)]
    kept = list(range(count))
    rank = list(priority) if priority is not None else [0] * count

    def narrowest() -> int:
        return sum(minimum[i] for i in kept) + GAP * (len(kept) - 1)

    empty = [i for i in kept if rows and not any(r[i] for r in rows)]
    while len(kept) > 1 and narrowest() > width:
        victim = empty.pop() if empty else min(reversed(kept), key=lambda i: rank[i])
        kept.remove(victim)
    widths = {i: natural[i] for i in kept}
    excess = sum(widths.values()) + GAP * (len(kept) - 1) - width
    while excess > 0:
        roomy = [i for i in kept if widths[i] > minimum[i]]
        if not roomy:
            break  # one column whose header alone is wider than the terminal
        widest = max(roomy, key=lambda i: (widths[i] - minimum[i], widths[i]))
        widths[widest] -= 1
        excess -= 1
    return [(i, widths[i]) for i in kept]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [shorten(c, w) + " " * (w - cell_len(shorten(c, w))) for c, w in zip(
        cells, widths, strict=True)]
    return (" " * GAP).join(padded).rstrip()


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int,
           priority: Sequence[int] | None = None) -> str:
    """The table as text: a header, a rule of dashes under each column, one line per row.

    >>> print(render(["Name", "Capacity"], [["vmss1", "2"]], 80))
    Name   Capacity
    -----  --------
    vmss1  2
    <BLANKLINE>
    """
    flat = [[" ".join(c.split()) if "\n" in c or "\t" in c else c for c in row] for row in rows]
    chosen = layout(headers, flat, width, priority)
    widths = [w for _, w in chosen]
    lines = [_line([headers[i] for i, _ in chosen], widths),
             _line(["-" * w for w in widths], widths)]
    lines.extend(_line([row[i] for i, _ in chosen], widths) for row in flat)
    return "\n".join(lines) + "\n"
