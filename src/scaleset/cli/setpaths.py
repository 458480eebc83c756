"""Which ``vmss update --set`` paths a scale set has, so a typo is refused, not stored.

The server keeps keys its typed models do not know (clients send Azure fields
scaleset does not interpret and expect them back), so ``--set
upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercnt=50`` would be stored,
ignored, and look like a change that worked. A key of a ``--set`` path goes
when

* the resource already has it (GET showed it, whatever the model types), or
* the typed model (:class:`~scaleset.model.scaleset.ScaleSet`) has that field,
  matched case-insensitively and then spelled as the model spells it (a field
  GET left out, such as an unset rolling policy), or
* it lies below a free-form map (``tags``, an extension's ``settings``), where
  any key goes;

anything else is a usage error naming the key, where it was looked up, and the
closest names there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer

from scaleset.model import fields
from scaleset.model.scaleset import ScaleSet

Segment = str | int


def format_path(path: list[Segment]) -> str:
    """A path as the user writes it.

    >>> format_path(["properties", "extensions", 0, "name"])
    'properties.extensions[0].name'
    """
    text = ""
    for segment in path:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}" if text else segment
    return text


@dataclass
class _Walk:
    """Where the walk is: the resource's value there, the model's type there, the path so far."""

    node: Any
    annotation: Any  # None: nothing typed here (a value the resource carries as-is)
    done: list[Segment]


def known_path(resource: dict[str, Any], path: list[Segment], shown: str) -> list[Segment]:
    """``path`` (already resolved against ``resource``) spelled as the model spells it.

    Raises ``typer.BadParameter`` on ``--set`` for a key that is neither in the
    resource nor a field of the typed model, unless a free-form map holds it.

    >>> try:
    ...     known_path({"sku": {}}, ["sku", "capacty"], "sku.capacty")
    ... except typer.BadParameter as exc:
    ...     print(exc.message)
    sku.capacty: unknown field 'capacty' in sku; did you mean capacity?
    >>> known_path({"properties": {}},
    ...            ["properties", "upgradePolicy", "rollingUpgradePolicy", "MAXSURGE"], "x")
    ['properties', 'upgradePolicy', 'rollingUpgradePolicy', 'maxSurge']
    """
    walk = _Walk(resource, ScaleSet, [])
    for n, segment in enumerate(path):
        if walk.annotation is not None and fields.is_free_form(walk.annotation):
            return [*walk.done, *path[n:]]  # a map: any key goes below it
        stepped = _index(walk, segment) if isinstance(segment, int) else _key(walk, segment,
                                                                               shown)
        if not stepped:
            # Not a container where one is needed (a str, an index out of range): the
            # assignment itself refuses that with a better message, and never creates it.
            return [*walk.done, *path[n:]]
    return walk.done


def _index(walk: _Walk, index: int) -> bool:
    """Step into ``[index]``; False when there is no such item to step into."""
    node = walk.node
    if not isinstance(node, list) or not -len(node) <= index < len(node):
        return False
    walk.node = node[index]
    walk.annotation = fields.item_of(walk.annotation) if walk.annotation is not None else None
    walk.done.append(index)
    return True


def _key(walk: _Walk, key: str, shown: str) -> bool:
    """Step into ``key``; False when the value here holds no keys (a str, a list)."""
    node = walk.node
    if node is not None and not isinstance(node, dict):
        return False
    model = fields.model_of(walk.annotation) if walk.annotation is not None else None
    field = fields.field(model, key, ignore_case=True) if model is not None else None
    if node is not None and key in node:
        spelt = key  # resolve_path spelt it as the resource does; keep that
    elif field is not None:
        spelt = field[0]  # the alias: any other spelling the server stores as an unknown key
    else:
        raise _unknown(walk, key, model, shown)
    walk.annotation = field[1] if field is not None else None
    walk.node = node.get(spelt) if node is not None else None
    walk.done.append(spelt)
    return True


def _unknown(walk: _Walk, key: str, model: Any, shown: str) -> typer.BadParameter:
    """The refusal: the key, where it was looked up, and the names known there."""
    known = list(fields.known_keys(model)) if model is not None else []
    # Keys the resource has but the model does not type are real too (managedDisk, ...).
    known += [k for k in walk.node or {} if k not in known]
    where = format_path(walk.done)
    if known:
        message = fields.UnknownKey(where, key, tuple(known)).message()
    else:
        message = f"unknown field '{key}' in {where}, which is not an object"
    return typer.BadParameter(f"{shown}: {message}", param_hint="--set")
