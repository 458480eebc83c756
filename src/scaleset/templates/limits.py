"""How big a template may be.

ARM's documented template limits ("Template limits" in the ARM template best
practices: 4 MB template, 256 parameters, 256 variables, 800 resources
including copy expansions, 64 outputs, 24,576 characters in an expression),
and the copy loop's count of at most 800 (the "copy" element's documentation).
The nesting depth of one expression is not documented by ARM; 64 is ours,
far above anything a real template needs and low enough to stay clear of
Python's recursion limit.
"""

from __future__ import annotations

from typing import Final

TEMPLATE_BYTES: Final = 4 * 1024 * 1024
PARAMETERS: Final = 256
VARIABLES: Final = 256
RESOURCES: Final = 800
OUTPUTS: Final = 64
COPY_COUNT: Final = 800
EXPRESSION_CHARS: Final = 24_576
EXPRESSION_DEPTH: Final = 64
NAME_CHARS: Final = 260
"""A resource name (with its parents' names) longer than this is refused before any PUT."""
