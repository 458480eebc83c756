"""Setting a value deep inside a JSON object, creating the objects on the way."""

from __future__ import annotations

from typing import Any


def set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """``tree[path[0]][path[1]]... = value``; missing or non-object levels become objects.

    >>> doc = {"sku": 3}
    >>> set_path(doc, ("sku", "capacity"), 5); doc
    {'sku': {'capacity': 5}}
    """
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value
