"""Turning template values into plain JSON: expressions evaluated, property copies expanded.

``value(v, scope)`` walks a JSON value: an expression string is parsed and
evaluated, a ``[[`` string loses its escape, an object with a ``copy`` array
(property iteration: ``[{"name", "count", "input"}]``) gets one array per
entry. ``if`` evaluates only the branch it takes; ``variables`` evaluates a
variable the first time it is asked for (variable ``copy`` included) and
refuses one that needs itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaleset.templates import limits, syntax
from scaleset.templates.errors import ExpressionError, TemplateError
from scaleset.templates.functions import FUNCTIONS
from scaleset.templates.scope import Scope
from scaleset.templates.values import expect, type_name

SPECIAL = frozenset({"if", "variables"})
"""Functions the evaluator runs itself (they need it, or must not evaluate every argument)."""


def known(name: str) -> bool:
    """Whether ``name`` (lower-cased) is a function this server evaluates."""
    return name in FUNCTIONS or name in SPECIAL


def check(value: Any, where: str) -> None:
    """Parse every expression in ``value`` and refuse unknown functions and wrong argument
    counts, so a template that cannot work is refused before anything is deployed."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, str) and syntax.is_expression(v):
            try:
                tree = syntax.parse(v)
            except ExpressionError as exc:
                raise TemplateError(_at(exc.message, at), target=at) from None
            for call in syntax.calls(tree):
                if not known(call.name):
                    raise TemplateError(_at(
                        f"The template function '{call.name}' is not valid. Please see "
                        "https://aka.ms/arm-functions for usage details.", at), target=at)
                _arity(call.name, len(call.args), at)
        elif isinstance(v, dict):
            stack.extend((item, f"{at}.{key}") for key, item in v.items())
        elif isinstance(v, list):
            stack.extend((item, f"{at}[{i}]") for i, item in enumerate(v))


def _at(message: str, where: str) -> str:
    return f"Deployment template validation failed: '{message}' (at {where})."


def _arity(name: str, count: int, where: str) -> None:
    least: int
    most: int | None
    if name in SPECIAL:
        least, most = (3, 3) if name == "if" else (1, 1)
    else:
        least, most, _ = FUNCTIONS[name]
    if count < least or (most is not None and count > most):
        wanted = f"{least}" if least == most else (
            f"at least {least}" if most is None else f"{least} to {most}")
        raise TemplateError(_at(
            f"The template language function '{name}' expects {wanted} parameter(s), "
            f"{count} given.", where), target=where)


def value(v: Any, scope: Scope) -> Any:
    """``v`` with every expression evaluated and every property copy expanded."""
    if isinstance(v, str):
        return expression(v, scope) if syntax.is_expression(v) else syntax.literal(v)
    if isinstance(v, list):
        return [value(item, scope) for item in v]
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for key, item in v.items():
            if key == "copy" and isinstance(item, list):
                out.update(property_copies(item, scope))
            else:
                out[key] = value(item, scope)
        return out
    return v


def expression(text: str, scope: Scope) -> Any:
    """One expression string's value."""
    return node(syntax.parse(text), scope)


def node(n: syntax.Node, scope: Scope) -> Any:
    if isinstance(n, syntax.Literal):
        return n.value
    if isinstance(n, syntax.Member):
        target = node(n.target, scope)
        if not isinstance(target, dict):
            raise ExpressionError(
                f"The language expression property '{n.name}' can't be evaluated: the value "
                f"is of type {type_name(target)}, not Object.")
        return _member(target, n.name)
    if isinstance(n, syntax.Index):
        target, index = node(n.target, scope), node(n.index, scope)
        if isinstance(target, list) and isinstance(index, int) and not isinstance(index, bool):
            if not 0 <= index < len(target):
                raise ExpressionError(
                    f"The language expression index '{index}' is out of bounds (the array has "
                    f"{len(target)} elements).")
            return target[index]
        if isinstance(target, dict) and isinstance(index, str):
            return _member(target, index)
        raise ExpressionError(
            f"The language expression cannot index a value of type {type_name(target)} with "
            f"a {type_name(index)}.")
    return _call(n, scope)


def _member(target: Mapping[str, Any], name: str) -> Any:
    for key, item in target.items():
        if key.lower() == name.lower():
            return item
    raise ExpressionError(f"The language expression property '{name}' doesn't exist, "
                          f"available properties are '{', '.join(target)}'.")


def _call(call: syntax.Call, scope: Scope) -> Any:
    if not known(call.name):
        raise ExpressionError(f"The template function '{call.name}' is not valid. Please see "
                              "https://aka.ms/arm-functions for usage details.")
    _arity(call.name, len(call.args), scope.where)
    if call.name == "if":
        condition = expect("if", node(call.args[0], scope), bool)
        return node(call.args[1] if condition else call.args[2], scope)
    if call.name == "variables":
        return variable(expect("variables", node(call.args[0], scope), str), scope)
    args = [node(a, scope) for a in call.args]
    return FUNCTIONS[call.name][2](scope, args)


def variable(name: str, scope: Scope) -> Any:
    """A template variable's value, evaluated once (``copy`` variables included)."""
    memo = scope.variables
    key = name.lower()
    if key in memo.values:
        return memo.values[key]
    raw = {k.lower(): v for k, v in memo.raw.items() if k != "copy"}
    copies = {str(c.get("name", "")).lower(): c for c in memo.raw.get("copy") or []
              if isinstance(c, dict)}
    if key not in raw and key not in copies:
        raise ExpressionError(f"The template variable '{name}' is not found. Please see "
                              "https://aka.ms/arm-syntax-variables for usage details.")
    if key in memo.evaluating:
        raise ExpressionError(f"The template variable '{name}' depends on itself (circular "
                              "reference between variables).")
    memo.evaluating.add(key)
    try:
        plain = scope.at(f"variables.{name}")
        result = (_copy_array(copies[key], plain) if key in copies and key not in raw
                  else value(raw[key], plain))
    finally:
        memo.evaluating.discard(key)
    memo.values[key] = result
    return result


def copy_count(raw: Any, scope: Scope, where: str) -> int:
    """A copy loop's ``count``: an integer from 0 to 800."""
    count = value(raw, scope)
    if isinstance(count, bool) or not isinstance(count, int):
        raise TemplateError(_at(f"The copy count must be an integer; it is of type "
                                f"{type_name(count)}.", where), target=where)
    if not 0 <= count <= limits.COPY_COUNT:
        raise TemplateError(_at(f"The copy count {count} is out of range: it must be between "
                                f"0 and {limits.COPY_COUNT}.", where), target=where)
    return count


def _copy_array(spec: Mapping[str, Any], scope: Scope) -> list[Any]:
    name = spec.get("name")
    if not isinstance(name, str) or not name or "input" not in spec:
        raise TemplateError(_at("A property or variable copy needs a 'name', a 'count' and "
                                "an 'input'.", scope.where), target=scope.where)
    count = copy_count(spec.get("count"), scope, f"{scope.where}.copy.{name}")
    return [value(spec["input"], scope.with_copy(name, i)) for i in range(count)]


def property_copies(specs: list[Any], scope: Scope) -> dict[str, Any]:
    """``"copy": [{"name", "count", "input"}, …]`` inside an object: one array per entry."""
    out: dict[str, Any] = {}
    for spec in specs:
        if not isinstance(spec, dict):
            raise TemplateError(_at("Each property copy must be an object with 'name', "
                                    "'count' and 'input'.", scope.where), target=scope.where)
        out[str(spec.get("name"))] = _copy_array(spec, scope)
    return out
