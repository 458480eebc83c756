"""JSON values as ARM's functions see them: type names, truthiness, conversions."""

from __future__ import annotations

import json
from typing import Any

from scaleset.templates.errors import ExpressionError


def type_name(value: Any) -> str:
    """ARM's name for a value's type, as its error messages use it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    return "Object"


def to_text(value: Any) -> str:
    """``string(value)``: strings as they are, booleans as .NET writes them (``True``),
    objects and arrays as minified JSON.

    >>> to_text(True), to_text(5), to_text({"a": [1]})
    ('True', '5', '{"a":[1]}')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def expect(function: str, value: Any, *kinds: type) -> Any:
    """``value`` if it is one of ``kinds`` (bool is never an int here), else ARM's refusal."""
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        wanted = " or ".join(type_name(k()) if k is not type(None) else "Null" for k in kinds)
        raise ExpressionError(
            f"The template language function '{function}' expects a parameter of type "
            f"{wanted}, but the value is of type {type_name(value)}.")
    return value


def camel_case(name: str) -> str:
    """How ARM writes an output's name in the deployment (Newtonsoft's camel case:
    a leading run of capitals is lowered, keeping the last before a lower-case letter).

    >>> camel_case("VMSS"), camel_case("MyOutput"), camel_case("URLValue"), camel_case("ok")
    ('vmss', 'myOutput', 'urlValue', 'ok')
    """
    if not name or not name[0].isupper():
        return name
    chars = list(name)
    for i, ch in enumerate(chars):
        if i == 1 and not ch.isupper():
            break
        following = i + 1 < len(chars)
        if i > 0 and following and not chars[i + 1].isupper():
            if chars[i + 1].isspace():
                chars[i] = ch.lower()
            break
        chars[i] = ch.lower()
    return "".join(chars)
