"""ARM's built-in template functions (the ones that take evaluated arguments).

Each entry is ``(least, most, implementation)``; ``most`` ``None`` is "any
number". Names are lower-case (ARM's are case-insensitive). The functions
that need the evaluator itself (``if``, ``variables``) live in ``evaluate``.
A name that is not here is refused by the evaluator, and by ``plan`` before
anything is deployed, naming the function.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from scaleset.templates import hashing
from scaleset.templates.errors import ExpressionError
from scaleset.templates.scope import Scope
from scaleset.templates.values import expect, to_text, type_name

Impl = Callable[[Scope, list[Any]], Any]


def _strings(function: str, args: list[Any]) -> list[str]:
    return [expect(function, a, str) for a in args]


# -- deployment facts ---------------------------------------------------------------------

def _parameters(scope: Scope, args: list[Any]) -> Any:
    name = expect("parameters", args[0], str)
    for key, value in scope.parameters.items():
        if key.lower() == name.lower():
            return value
    raise ExpressionError(
        f"The template parameter '{name}' is not found. Please see "
        "https://aka.ms/arm-syntax-parameters for usage details.")


def _resource_group(scope: Scope, _: list[Any]) -> Any:
    f = scope.facts
    out: dict[str, Any] = {
        "id": f"/subscriptions/{f.subscription_id}/resourceGroups/{f.resource_group}",
        "name": f.resource_group, "type": "Microsoft.Resources/resourceGroups",
        "properties": {"provisioningState": "Succeeded"}}
    if f.resource_group_location is not None:
        out["location"] = f.resource_group_location
    return out


def _subscription(scope: Scope, _: list[Any]) -> Any:
    f = scope.facts
    return {"id": f"/subscriptions/{f.subscription_id}", "subscriptionId": f.subscription_id,
            "tenantId": f.tenant_id, "displayName": f.subscription_id}


def _deployment(scope: Scope, _: list[Any]) -> Any:
    return {"name": scope.facts.deployment_name, "properties": {
        "template": {"contentVersion": scope.template.get("contentVersion", "1.0.0.0")},
        "mode": "Incremental"}}


def _providers(scope: Scope, args: list[Any]) -> Any:
    namespace, *rest = _strings("providers", args)
    found = []
    for key, versions in scope.facts.api_versions.items():
        ns, _, rtype = key.partition("/")
        if ns == namespace.lower() and (not rest or rtype == rest[0].lower()):
            found.append({"resourceType": rtype, "apiVersions": list(versions)})
    if not found:
        raise ExpressionError(
            f"The resource provider '{namespace}' (type '{rest[0] if rest else '*'}') is not "
            "served here, so providers() has nothing to return.")
    if rest:
        return {"namespace": namespace, "resourceType": rest[0],
                "apiVersions": found[0]["apiVersions"]}
    return {"namespace": namespace, "resourceTypes": found}


def resource_id(scope: Scope, args: list[Any], *, function: str = "resourceId",
                at_group: bool = True) -> str:
    """``resourceId([subscriptionId], [resourceGroupName], type, name1, [name2]…)``."""
    parts = _strings(function, args)
    at = next((i for i, p in enumerate(parts) if "/" in p), None)
    if at is None or at > (2 if at_group else 1):
        raise ExpressionError(
            f"Unable to evaluate template language function '{function}': the resource type "
            "(namespace/type, e.g. 'Microsoft.Network/loadBalancers') is missing.")
    before, rtype, names = parts[:at], parts[at], parts[at + 1:]
    segments = rtype.strip("/").split("/")
    if len(segments) - 1 != len(names) or len(segments) < 2:
        raise ExpressionError(
            f"Unable to evaluate template language function '{function}': the type "
            f"'{rtype}' requires {len(segments) - 1} resource name argument(s), "
            f"{len(names)} given.")
    sub = scope.facts.subscription_id
    group = scope.facts.resource_group
    if at_group and len(before) == 2:
        sub, group = before
    elif at_group and len(before) == 1:
        group = before[0]
    elif not at_group and len(before) == 1:
        sub = before[0]
    path = segments[0] + "".join(f"/{t}/{n}" for t, n in zip(segments[1:], names, strict=True))
    prefix = f"/subscriptions/{sub}/resourceGroups/{group}" if at_group else \
        f"/subscriptions/{sub}"
    return f"{prefix}/providers/{path}"


def _reference(scope: Scope, args: list[Any]) -> Any:
    target = expect("reference", args[0], str)
    api_version = expect("reference", args[1], str) if len(args) > 1 else None
    full = len(args) > 2 and str(args[2]).lower() == "full"
    if scope.resolver is None:
        raise ExpressionError(
            f"The template function 'reference' is not expected at this location "
            f"({scope.where}): it can be used only in resource properties and outputs. "
            "Please see https://aka.ms/arm-functions-resource for usage details.")
    rid = target
    if not target.startswith("/"):
        named = [r for r in scope.resources if r.name.lower() == target.lower()]
        if len(named) != 1:
            raise ExpressionError(
                f"The template resource '{target}' is not defined in the template (or not "
                "uniquely); use resourceId() to name it.")
        rid, api_version = named[0].id, api_version or named[0].api_version
    if api_version is None:
        declared = [r for r in scope.resources if r.id.lower() == rid.lower()]
        api_version = declared[0].api_version if declared else None
    resource = scope.resolver(rid, api_version)
    return dict(resource) if full else resource.get("properties", {})


# -- strings, arrays, objects ---------------------------------------------------------------

def _concat(_: Scope, args: list[Any]) -> Any:
    if args and isinstance(args[0], list):
        out: list[Any] = []
        for a in args:
            out.extend(expect("concat", a, list))
        return out
    for a in args:
        if isinstance(a, dict | list):
            raise ExpressionError(
                "The template language function 'concat' expects its parameters to be all "
                f"arrays or all strings and integers; got {type_name(a)}.")
    return "".join(to_text(a) for a in args)


_FORMAT_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^}]*))?\}")


def _format(_: Scope, args: list[Any]) -> str:
    """.NET composite formatting: ``{0}``, ``{0,5}``, ``{0:D3}``, ``{0:x}``, ``{{``/``}}``."""
    pattern = expect("format", args[0], str)
    values = args[1:]

    def item(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        index = int(m.group(1))
        if index >= len(values):
            raise ExpressionError(
                f"The template language function 'format': '{{{index}}}' has no argument "
                f"(only {len(values)} given).")
        value, spec = values[index], m.group(3)
        if spec:
            kind, digits = spec[0], spec[1:]
            if kind in "Dd" and isinstance(value, int) and (not digits or digits.isdigit()):
                text = str(value).zfill(int(digits or 0))
            elif kind in "Xx" and isinstance(value, int) and (not digits or digits.isdigit()):
                text = format(value, kind).zfill(int(digits or 0))
            else:
                raise ExpressionError(
                    f"The template language function 'format': format string '{spec}' is not "
                    "supported here (use D<n> or X<n> on integers).")
        else:
            text = to_text(value)
        width = int(m.group(2) or 0)
        return text.rjust(width) if width >= 0 else text.ljust(-width)

    return _FORMAT_ITEM.sub(item, pattern)


def _length(_: Scope, args: list[Any]) -> int:
    return len(expect("length", args[0], str, list, dict))


def _empty(_: Scope, args: list[Any]) -> bool:
    value = args[0]
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _union(_: Scope, args: list[Any]) -> Any:
    if isinstance(args[0], list):
        out: list[Any] = []
        for a in args:
            for item in expect("union", a, list):
                if item not in out:
                    out.append(item)
        return out
    merged: dict[str, Any] = {}
    for a in args:
        merged.update(expect("union", a, dict))
    return merged


def _contains(_: Scope, args: list[Any]) -> bool:
    container, item = args
    if isinstance(container, str):
        return to_text(item) in container  # case-sensitive, as ARM's
    if isinstance(container, dict):
        return any(k.lower() == to_text(item).lower() for k in container)
    return item in expect("contains", container, list)


def _create_object(_: Scope, args: list[Any]) -> dict[str, Any]:
    if len(args) % 2:
        raise ExpressionError("The template language function 'createObject' expects an even "
                              "number of parameters (key, value pairs).")
    return {expect("createObject", args[i], str): args[i + 1] for i in range(0, len(args), 2)}


def _equals(_: Scope, args: list[Any]) -> bool:
    a, b = args
    return bool(type(a) is type(b) and a == b)


def _int(_: Scope, args: list[Any]) -> int:
    value = args[0]
    if isinstance(value, bool):
        raise ExpressionError("The template language function 'int' cannot convert a Boolean.")
    if isinstance(value, int):
        return value
    try:
        return int(expect("int", value, str).strip())
    except ValueError:
        raise ExpressionError(
            f"The template language function 'int' cannot convert '{value}' to an integer."
        ) from None


def _bool(_: Scope, args: list[Any]) -> bool:
    value = args[0]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(expect("bool", value, str)).strip().lower()
    if text not in ("true", "false"):
        raise ExpressionError(f"The template language function 'bool' cannot convert '{value}'.")
    return text == "true"


def _compare(function: str, test: Callable[[Any, Any], bool]) -> Impl:
    def run(_: Scope, args: list[Any]) -> bool:
        a, b = args
        if not (isinstance(a, int) and isinstance(b, int)) and not (
                isinstance(a, str) and isinstance(b, str)):
            raise ExpressionError(
                f"The template language function '{function}' expects two integers or two "
                f"strings; got {type_name(a)} and {type_name(b)}.")
        return test(a, b)
    return run


def _arith(function: str, op: Callable[[int, int], int]) -> Impl:
    def run(_: Scope, args: list[Any]) -> int:
        a, b = (expect(function, x, int) for x in args)
        if function in ("div", "mod") and b == 0:
            raise ExpressionError(f"The template language function '{function}' cannot divide "
                                  "by zero.")
        return op(a, b)
    return run


def _div(a: int, b: int) -> int:
    q = abs(a) // abs(b)  # .NET truncates towards zero
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int:
    return a - _div(a, b) * b


def _substring(_: Scope, args: list[Any]) -> str:
    text = str(expect("substring", args[0], str))
    start = expect("substring", args[1], int) if len(args) > 1 else 0
    length = expect("substring", args[2], int) if len(args) > 2 else len(text) - start
    if start < 0 or length < 0 or start + length > len(text):
        raise ExpressionError(
            f"The template language function 'substring': index {start} and length {length} "
            f"do not fit in a string of length {len(text)}.")
    return text[start:start + length]


def _split(_: Scope, args: list[Any]) -> list[str]:
    text = expect("split", args[0], str)
    delimiters = args[1] if isinstance(args[1], list) else [args[1]]
    pattern = "|".join(re.escape(expect("split", d, str)) for d in delimiters)
    return re.split(pattern, text) if pattern else [text]


def _take_skip(function: str) -> Impl:
    def run(_: Scope, args: list[Any]) -> Any:
        value = expect(function, args[0], str, list)
        n = max(0, expect(function, args[1], int))
        return value[:n] if function == "take" else value[n:]
    return run


def _first_last(function: str) -> Impl:
    def run(_: Scope, args: list[Any]) -> Any:
        value = expect(function, args[0], str, list)
        if not value:
            return "" if isinstance(value, str) else None
        return value[0] if function == "first" else value[-1]
    return run


def _range(_: Scope, args: list[Any]) -> list[int]:
    start, count = (expect("range", a, int) for a in args)
    if count < 0 or count > 10_000:
        raise ExpressionError("The template language function 'range' expects a count "
                              "between 0 and 10000.")
    return list(range(start, start + count))


def _json(_: Scope, args: list[Any]) -> Any:
    text = expect("json", args[0], str)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"The template language function 'json' cannot parse its "
                              f"argument: {exc}.") from None


def _base64_to_string(_: Scope, args: list[Any]) -> str:
    try:
        return base64.b64decode(expect("base64ToString", args[0], str), validate=True
                                ).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ExpressionError("The template language function 'base64ToString' expects "
                              "valid base64 of UTF-8 text.") from None


def _not_supported(function: str, why: str) -> Impl:
    def run(_: Scope, __: list[Any]) -> Any:
        raise ExpressionError(f"The template function '{function}' is not supported by this "
                              f"server: {why}.")
    return run


def _pad_left(_: Scope, args: list[Any]) -> str:
    text = to_text(args[0])
    width = expect("padLeft", args[1], int)
    fill = expect("padLeft", args[2], str) if len(args) > 2 else " "
    if len(fill) != 1:
        raise ExpressionError("The template language function 'padLeft' expects a single "
                              "padding character.")
    return text.rjust(width, fill)


def _index_of(function: str) -> Impl:
    def run(_: Scope, args: list[Any]) -> int:
        hay, needle = args
        if isinstance(hay, list):
            matches = [i for i, v in enumerate(hay) if v == needle]
        else:
            text, sub = expect(function, hay, str).lower(), expect(function, needle, str).lower()
            found = text.find(sub) if function == "indexof" else text.rfind(sub)
            matches = [found] if found >= 0 else []
        if not matches:
            return -1
        return matches[0] if function == "indexof" else matches[-1]
    return run


def _coalesce(_: Scope, args: list[Any]) -> Any:
    return next((a for a in args if a is not None), None)


def _copy_index(scope: Scope, args: list[Any]) -> int:
    name: str | None = None
    offset = 0
    if args and isinstance(args[0], str):
        name = args[0]
        offset = expect("copyIndex", args[1], int) if len(args) > 1 else 0
    elif args:
        offset = expect("copyIndex", args[0], int)
    for loop, index in scope.copy.items():
        if (loop is None and name is None) or (
                loop is not None and name is not None and loop.lower() == name.lower()):
            return index + offset
    raise ExpressionError(
        "The template function 'copyIndex' is not expected at this location"
        + (f": there is no copy loop named '{name}' here." if name else
           ": it can be used only in a resource with a copy loop.")
        + " Please see https://aka.ms/arm-copy for usage details.")


FUNCTIONS: Final[Mapping[str, tuple[int, int | None, Impl]]] = {
    "parameters": (1, 1, _parameters),
    "resourcegroup": (0, 0, _resource_group),
    "subscription": (0, 0, _subscription),
    "deployment": (0, 0, _deployment),
    "providers": (1, 2, _providers),
    "resourceid": (2, None, resource_id),
    "subscriptionresourceid": (2, None, lambda s, a: resource_id(
        s, a, function="subscriptionResourceId", at_group=False)),
    "reference": (1, 3, _reference),
    "copyindex": (0, 2, _copy_index),
    "concat": (0, None, _concat),
    "format": (1, None, _format),
    "string": (1, 1, lambda _, a: to_text(a[0])),
    "int": (1, 1, _int),
    "bool": (1, 1, _bool),
    "equals": (2, 2, _equals),
    "not": (1, 1, lambda _, a: not expect("not", a[0], bool)),
    "and": (2, None, lambda _, a: all(expect("and", x, bool) for x in a)),
    "or": (2, None, lambda _, a: any(expect("or", x, bool) for x in a)),
    "true": (0, 0, lambda _, __: True),
    "false": (0, 0, lambda _, __: False),
    "null": (0, 0, lambda _, __: None),
    "length": (1, 1, _length),
    "empty": (1, 1, _empty),
    "tolower": (1, 1, lambda _, a: expect("toLower", a[0], str).lower()),
    "toupper": (1, 1, lambda _, a: expect("toUpper", a[0], str).upper()),
    "trim": (1, 1, lambda _, a: expect("trim", a[0], str).strip()),
    "replace": (3, 3, lambda _, a: expect("replace", a[0], str).replace(
        expect("replace", a[1], str), expect("replace", a[2], str))),
    "startswith": (2, 2, lambda _, a: expect("startsWith", a[0], str).lower().startswith(
        expect("startsWith", a[1], str).lower())),
    "endswith": (2, 2, lambda _, a: expect("endsWith", a[0], str).lower().endswith(
        expect("endsWith", a[1], str).lower())),
    "indexof": (2, 2, _index_of("indexof")),
    "lastindexof": (2, 2, _index_of("lastindexof")),
    "substring": (1, 3, _substring),
    "split": (2, 2, _split),
    "padleft": (2, 3, _pad_left),
    "uniquestring": (1, None, lambda _, a: hashing.unique_string(_strings("uniqueString", a))),
    "guid": (1, None, lambda _, a: hashing.guid(_strings("guid", a))),
    "base64": (1, 1, lambda _, a: base64.b64encode(
        expect("base64", a[0], str).encode("utf-8")).decode("ascii")),
    "base64tostring": (1, 1, _base64_to_string),
    "json": (1, 1, _json),
    "createarray": (0, None, lambda _, a: list(a)),
    "array": (1, 1, lambda _, a: a[0] if isinstance(a[0], list) else [a[0]]),
    "createobject": (0, None, _create_object),
    "union": (1, None, _union),
    "contains": (2, 2, _contains),
    "coalesce": (1, None, _coalesce),
    "first": (1, 1, _first_last("first")),
    "last": (1, 1, _first_last("last")),
    "take": (2, 2, _take_skip("take")),
    "skip": (2, 2, _take_skip("skip")),
    "range": (2, 2, _range),
    "min": (1, None, lambda _, a: min(expect("min", x, int) for x in (
        a[0] if len(a) == 1 and isinstance(a[0], list) else a))),
    "max": (1, None, lambda _, a: max(expect("max", x, int) for x in (
        a[0] if len(a) == 1 and isinstance(a[0], list) else a))),
    "greater": (2, 2, _compare("greater", lambda a, b: bool(a > b))),
    "greaterorequals": (2, 2, _compare("greaterOrEquals", lambda a, b: bool(a >= b))),
    "less": (2, 2, _compare("less", lambda a, b: bool(a < b))),
    "lessorequals": (2, 2, _compare("lessOrEquals", lambda a, b: bool(a <= b))),
    "add": (2, 2, _arith("add", lambda a, b: a + b)),
    "sub": (2, 2, _arith("sub", lambda a, b: a - b)),
    "mul": (2, 2, _arith("mul", lambda a, b: a * b)),
    "div": (2, 2, _arith("div", _div)),
    "mod": (2, 2, _arith("mod", _mod)),
    "listkeys": (2, 3, _not_supported("listKeys", "no resource type served here has keys")),
}
