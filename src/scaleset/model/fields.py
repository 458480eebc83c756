"""Which JSON keys a typed model knows, so a misspelt one is caught instead of kept.

ARM models keep unknown fields on purpose (clients send properties scaleset
does not interpret and expect them back), so a typo such as
``maxBatchInstancePercnt`` is stored and silently ignored. Where a human
writes the JSON by hand (a ``simulate`` scenario, ``vmss update --set``),
these helpers walk the typed model alongside the data and name what it does
not know, with the closest known names as the fix.

Below a field typed as a free-form map (``tags``, an extension's
``settings``) or as ``Any``, every key goes.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A key the model at ``path`` does not have."""

    path: str
    """Where it was found, e.g. ``properties.upgradePolicy`` (empty: the top level)."""
    key: str
    known: tuple[str, ...]

    def message(self) -> str:
        """One line naming the key, where it was, and what was probably meant."""
        where = f" in {self.path}" if self.path else ""
        close = difflib.get_close_matches(self.key, self.known, n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join(close)}?" if close
                else f"known fields: {', '.join(self.known)}")
        return f"unknown field '{self.key}'{where}; {hint}"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` as ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model ``annotation`` is (optionally), else None."""
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(
        annotation, BaseModel) else None


def item_of(annotation: Any) -> Any | None:
    """The item type of a ``list[X]`` annotation, else None."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) in (list, tuple):
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return None


def is_free_form(annotation: Any) -> bool:
    """Whether any key goes below ``annotation`` (a map, ``Any``, or a union of shapes)."""
    annotation = _unwrap(annotation)
    if annotation is Any or typing.get_origin(annotation) in (dict, Mapping):
        return True
    if isinstance(annotation, type) and issubclass(annotation, dict):
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def known_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The wire names (aliases) of ``model``'s fields."""
    return tuple(field.alias or name for name, field in model.model_fields.items())


def field(model: type[BaseModel], key: str, *, ignore_case: bool = False
          ) -> tuple[str, Any] | None:
    """``(wire name, annotation)`` of the field ``key`` names (alias or attribute name)."""
    def same(a: str, b: str) -> bool:
        return a.lower() == b.lower() if ignore_case else a == b
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if same(alias, key) or same(name, key):
            return alias, info.annotation
    return None


def unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[UnknownKey]:
    """Every key of ``data`` (JSON) the typed ``model`` does not know, depth first."""
    if not isinstance(data, dict):
        return []
    found: list[UnknownKey] = []
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        hit = field(model, str(key))
        if hit is None:
            found.append(UnknownKey(path, str(key), known_keys(model)))
            continue
        found.extend(_unknown_below(hit[1], value, here))
    return found


def _unknown_below(annotation: Any, value: Any, path: str) -> list[UnknownKey]:
    nested = model_of(annotation)
    if nested is not None:
        return unknown_keys(nested, value, path)
    item = item_of(annotation)
    if item is not None and isinstance(value, list):
        return [u for i, v in enumerate(value) for u in _unknown_below(item, v, f"{path}[{i}]")]
    return []
