"""A whole template: parameters bound, resources expanded and ordered, outputs evaluated.

``plan(template, parameters, facts)`` does everything that can be decided
before the first resource is written: the template's shape and limits,
every expression parsed and every function known, parameters checked
against their declarations, ``condition``, resource ``copy`` loops (parallel,
or serial in batches) and nested child resources expanded, names, types and
ids computed, ``dependsOn`` resolved (by id, ``type/name``, name or copy loop
name) and the resources ordered, cycles refused. A resource's body is
evaluated later, by ``body``, when the resources it depends on exist, so
``reference()`` sees them; ``outputs`` is evaluated last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from scaleset.templates import evaluate, limits
from scaleset.templates.errors import ExpressionError, TemplateError
from scaleset.templates.scope import Facts, Resolver, Scope, TemplateResource
from scaleset.templates.values import camel_case, type_name

_PLAN_FIELDS: Final = frozenset({"type", "name", "apiversion", "dependson", "copy", "condition",
                                 "comments", "resources", "metadata"})
"""Declaration fields that are the template's business, never sent to the resource."""
_REFUSED_FIELDS: Final = {"scope": "extension resources ('scope') are not supported",
                          "existing": "'existing' resources are not supported"}
_TYPES: Final = {"string": "String", "securestring": "SecureString", "int": "Int",
                 "bool": "Bool", "object": "Object", "secureobject": "SecureObject",
                 "array": "Array"}


@dataclass(frozen=True)
class Resource:
    """One resource to deploy (a copy loop's instance is one of these)."""

    id: str
    type: str
    name: str
    api_version: str
    depends_on: frozenset[str]
    """Lower-cased ids of the resources that must exist first."""
    declaration: Mapping[str, Any]
    copy: Mapping[str | None, int]
    where: str

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass(frozen=True)
class Plan:
    scope: Scope
    resources: tuple[Resource, ...]
    """In an order that respects every dependency."""
    outputs: Mapping[str, Any]
    parameters: Mapping[str, Any]
    """The parameters as the deployment shows them (secure values left out)."""

    def template_resources(self) -> list[TemplateResource]:
        return [TemplateResource(r.id, r.type, r.name, r.api_version) for r in self.resources]

    def run_scope(self, resolver: Resolver) -> Scope:
        return self.scope.at_run_time(resolver, self.template_resources())


def _fail(message: str, where: str) -> TemplateError:
    return TemplateError(f"Deployment template validation failed: '{message}' (at {where}).",
                         target=where)


def _evaluated(raw: Any, scope: Scope, where: str) -> Any:
    try:
        return evaluate.value(raw, scope.at(where))
    except TemplateError as exc:
        if exc.message.startswith("Deployment template validation failed"):
            raise
        raise _fail(exc.message, where) from None


def _string(raw: Any, scope: Scope, where: str) -> str:
    result = _evaluated(raw, scope, where)
    if not isinstance(result, str) or not result:
        raise _fail(f"The value must be a non-empty string; it is {type_name(result)}.", where)
    return result


# -- the template as a whole ----------------------------------------------------------------

def _shape(template: Any) -> Mapping[str, Any]:
    if not isinstance(template, dict):
        raise _fail("The template must be a JSON object.", "template")
    size = len(json.dumps(template, separators=(",", ":")).encode("utf-8"))
    if size > limits.TEMPLATE_BYTES:
        raise _fail(f"The template is {size} bytes; at most {limits.TEMPLATE_BYTES} are "
                    "allowed.", "template")
    if "languageVersion" in template:
        raise _fail("Templates with 'languageVersion' (symbolic resource names) are not "
                    "supported here; use the resources array form.", "languageVersion")
    for key, kind, most in (("parameters", dict, limits.PARAMETERS),
                            ("variables", dict, limits.VARIABLES),
                            ("resources", list, limits.RESOURCES),
                            ("outputs", dict, limits.OUTPUTS)):
        section = template.get(key)
        if section is None:
            continue
        if not isinstance(section, kind):
            raise _fail(f"The template's '{key}' must be a JSON "
                        f"{'object' if kind is dict else 'array'}.", key)
        if len(section) > most:
            raise _fail(f"The template has {len(section)} {key}; at most {most} are allowed.",
                        key)
    if template.get("functions"):
        raise _fail("User-defined functions are not supported here.", "functions")
    evaluate.check({k: v for k, v in template.items() if k != "parameters"}, "template")
    for name, declaration in (template.get("parameters") or {}).items():
        if isinstance(declaration, dict):
            evaluate.check(declaration.get("defaultValue"), f"parameters.{name}.defaultValue")
    return template


def _bind(template: Mapping[str, Any], given: Mapping[str, Any], facts: Facts
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parameters' values, and the deployment's view of them (secure ones hidden)."""
    declared = template.get("parameters") or {}
    lower = {k.lower(): k for k in declared}
    for name in given:
        if name.lower() not in lower:
            raise _fail(f"The template parameters '{name}' are not valid; they are not present "
                        "in the original template and can therefore not be provided at "
                        "deployment time. The only supported parameters for this template are "
                        f"'{', '.join(declared)}'.", f"parameters.{name}")
    provided = {k.lower(): v for k, v in given.items()}
    values: dict[str, Any] = {}
    view: dict[str, Any] = {}
    scope = Scope.create(facts, template, values)
    for name, declaration in declared.items():
        where = f"parameters.{name}"
        if not isinstance(declaration, dict):
            raise _fail("A parameter's declaration must be an object with a 'type'.", where)
        kind = str(declaration.get("type", "")).lower()
        if kind not in _TYPES:
            raise _fail(f"The parameter type '{declaration.get('type')}' is not valid; use one "
                        f"of {', '.join(_TYPES.values())}.", f"{where}.type")
        if name.lower() in provided:
            entry = provided[name.lower()]
            if not isinstance(entry, dict) or "value" not in entry:
                raise _fail("A parameter value must be given as {\"value\": …} (Key Vault "
                            "references are not supported here).", where)
            value = entry["value"]
        elif "defaultValue" in declaration:
            value = _evaluated(declaration["defaultValue"], scope, f"{where}.defaultValue")
        else:
            raise _fail(f"The value for the template parameter '{name}' is not provided.",
                        where)
        _check_parameter(name, kind, declaration, value, where)
        values[name] = value
        view[name] = {"type": _TYPES[kind]} if kind.startswith("secure") else \
            {"type": _TYPES[kind], "value": value}
    return values, view


def _check_parameter(name: str, kind: str, declaration: Mapping[str, Any], value: Any,
                     where: str) -> None:
    expected = {"string": str, "securestring": str, "int": int, "bool": bool,
                "object": dict, "secureobject": dict, "array": list}[kind]
    if (isinstance(value, bool) and expected is int) or not isinstance(value, expected):
        raise _fail(f"Template parameter '{name}' was provided an invalid value: expected a "
                    f"value of type '{_TYPES[kind]}', got {type_name(value)}.", where)
    allowed = declaration.get("allowedValues")
    if isinstance(allowed, list) and value not in allowed:
        raise _fail(f"The provided value for the template parameter '{name}' is not valid. "
                    f"The value must be one of: {json.dumps(allowed)}.", where)
    bounds = {"minValue": value if isinstance(value, int) else None,
              "maxValue": value if isinstance(value, int) else None,
              "minLength": len(value) if isinstance(value, str | list) else None,
              "maxLength": len(value) if isinstance(value, str | list) else None}
    for rule, measured in bounds.items():
        bound = declaration.get(rule)
        if measured is None or not isinstance(bound, int):
            continue
        if (measured < bound) if rule.startswith("min") else (measured > bound):
            raise _fail(f"The {'length' if 'Length' in rule else 'value'} {measured} of "
                        f"parameter '{name}' breaks its {rule} {bound}.", where)


# -- resources --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Declared:
    resource: Resource
    loop: str | None
    batch: int | None
    """Serial copy loops: instance index // batch size; None for parallel."""
    raw_depends_on: tuple[str, ...]
    included: bool


def _resource_id(facts: Facts, rtype: str, name: str, where: str) -> str:
    segments = rtype.split("/")
    names = name.split("/")
    if len(segments) < 2 or len(names) != len(segments) - 1 or not all(names):
        raise _fail(f"The resource type '{rtype}' needs {len(segments) - 1} name segment(s) "
                    f"separated by '/'; the name '{name}' has {len(names)}.", where)
    if len(name) > limits.NAME_CHARS:
        raise _fail(f"The resource name is {len(name)} characters long; at most "
                    f"{limits.NAME_CHARS} are allowed.", where)
    path = segments[0] + "".join(f"/{t}/{n}" for t, n in zip(segments[1:], names, strict=True))
    return (f"/subscriptions/{facts.subscription_id}/resourceGroups/{facts.resource_group}"
            f"/providers/{path}")


def _expand(raw: Any, scope: Scope, where: str, parent: tuple[str, str] | None,
            out: list[_Declared]) -> None:
    if not isinstance(raw, dict):
        raise _fail("A resource must be a JSON object.", where)
    for key, why in _REFUSED_FIELDS.items():
        if key in raw:
            raise _fail(f"The resource field '{key}' is not supported here: {why}.", where)
    copy = raw.get("copy")
    loop: str | None = None
    count, batch = 1, None
    if copy is not None:
        if not isinstance(copy, dict) or not isinstance(copy.get("name"), str):
            raise _fail("A resource's 'copy' must be an object with a 'name' and a 'count'.",
                        f"{where}.copy")
        loop = copy["name"]
        count = evaluate.copy_count(copy.get("count"), scope.at(f"{where}.copy"),
                                    f"{where}.copy.count")
        if str(copy.get("mode", "parallel")).lower() == "serial":
            size = copy.get("batchSize", 1)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise _fail("A serial copy's batchSize must be a positive integer.",
                            f"{where}.copy.batchSize")
            batch = size
    for i in range(count):
        at = f"{where}[copy {i}]" if loop else where
        inner = scope.with_copy(None, i).with_copy(loop, i) if loop else scope
        included = True
        if "condition" in raw:
            condition = _evaluated(raw["condition"], inner, f"{at}.condition")
            if not isinstance(condition, bool):
                raise _fail(f"The condition must be a Boolean; it is {type_name(condition)}.",
                            f"{at}.condition")
            included = condition
        rtype = _string(raw.get("type"), inner, f"{at}.type")
        name = _string(raw.get("name"), inner, f"{at}.name")
        api_version = _string(raw.get("apiVersion"), inner, f"{at}.apiVersion")
        if parent is not None and "/" not in rtype:  # a nested child, named relatively
            rtype, name = f"{parent[0]}/{rtype}", f"{parent[1]}/{name}"
        depends = raw.get("dependsOn") or []
        if not isinstance(depends, list):
            raise _fail("'dependsOn' must be an array of resource names or ids.",
                        f"{at}.dependsOn")
        raw_deps = tuple(_string(d, inner, f"{at}.dependsOn[{j}]") for j, d in
                         enumerate(depends))
        rid = _resource_id(scope.facts, rtype, name, at)
        out.append(_Declared(
            Resource(rid, rtype, name, api_version, frozenset(), raw, dict(inner.copy), at),
            loop, None if batch is None else i // batch, raw_deps, included))
        for j, child in enumerate(raw.get("resources") or []):
            _expand(child, inner, f"{at}.resources[{j}]", (rtype, name), out)


def _resolve(declared: list[_Declared]) -> list[Resource]:
    by_id = {d.resource.key: d for d in declared}
    if len(by_id) != len(declared):
        seen: set[str] = set()
        for d in declared:
            if d.resource.key in seen:
                raise _fail(f"The resource '{d.resource.id}' is defined multiple times in the "
                            "template.", d.resource.where)
            seen.add(d.resource.key)
    resolved: list[Resource] = []
    for d in declared:
        if not d.included:
            continue
        deps: set[str] = set()
        for ref in d.raw_depends_on:
            matches = _matches(ref, declared)
            if not matches:
                raise _fail(f"The resource '{ref}' is not defined in the template.",
                            f"{d.resource.where}.dependsOn")
            deps.update(m.resource.key for m in matches if m.included)
        if d.batch is not None and d.batch > 0:
            deps.update(o.resource.key for o in declared if o.loop == d.loop and
                        o.batch == d.batch - 1 and o.included and
                        o.resource.declaration is d.resource.declaration)
        deps.discard(d.resource.key)
        resolved.append(Resource(**{**d.resource.__dict__, "depends_on": frozenset(deps)}))
    return _ordered(resolved)


def _matches(ref: str, declared: Sequence[_Declared]) -> list[_Declared]:
    key = ref.strip().lower()
    if key.startswith("/subscriptions/"):
        return [d for d in declared if d.resource.key == key]
    if "/" in key and "." in key.split("/", 1)[0]:
        return [d for d in declared if _type_and_name(d.resource).lower() == key]
    return [d for d in declared if d.resource.name.lower() == key or
            (d.loop is not None and d.loop.lower() == key)]


def _type_and_name(r: Resource) -> str:
    """ARM's short reference ``Namespace/type[/child]/name[/childName]``."""
    return f"{r.type}/{r.name}"


def _ordered(resources: list[Resource]) -> list[Resource]:
    """Kahn's algorithm, stable in template order; what is left over is a cycle."""
    pending = {r.key: r for r in resources}
    done: set[str] = set()
    out: list[Resource] = []
    while pending:
        ready = [r for r in pending.values() if r.depends_on <= done]
        if not ready:
            stuck = next(iter(pending.values()))
            cycle = " -> ".join(_cycle(stuck, pending))
            raise _fail(f"Circular dependency detected on resource: '{stuck.id}'. Please see "
                        f"https://aka.ms/arm-dependson for usage details. ({cycle})",
                        stuck.where)
        for r in ready:
            out.append(r)
            done.add(r.key)
            del pending[r.key]
    return out


def _cycle(start: Resource, pending: Mapping[str, Resource]) -> list[str]:
    path: list[str] = []
    current = start
    while current.key not in path:
        path.append(current.key)
        current = pending[next(k for k in sorted(current.depends_on) if k in pending)]
    path.append(current.key)
    return [pending[k].name for k in path[path.index(current.key):]]


def plan(template: Any, parameters: Mapping[str, Any], facts: Facts) -> Plan:
    """Everything decidable before deploying; raises ``TemplateError`` (400) otherwise."""
    shaped = _shape(template)
    values, view = _bind(shaped, parameters, facts)
    scope = Scope.create(facts, shaped, values)
    declared: list[_Declared] = []
    for i, raw in enumerate(shaped.get("resources") or []):
        _expand(raw, scope, f"resources[{i}]", None, declared)
    if len(declared) > limits.RESOURCES:
        raise _fail(f"The template expands to {len(declared)} resources; at most "
                    f"{limits.RESOURCES} are allowed.", "resources")
    return Plan(scope, tuple(_resolve(declared)), shaped.get("outputs") or {}, view)


def body(resource: Resource, scope: Scope) -> dict[str, Any]:
    """The resource's request body, evaluated now (``reference()`` sees what exists)."""
    inner = scope
    for loop, index in resource.copy.items():
        inner = inner.with_copy(loop, index)
    fields = {k: v for k, v in resource.declaration.items() if k.lower() not in _PLAN_FIELDS}
    result = _evaluated(fields, inner, resource.where)
    assert isinstance(result, dict)
    return result


def outputs(raw: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """The deployment's outputs: ``{camelCasedName: {"type", "value"}}``, typed as declared."""
    out: dict[str, Any] = {}
    for name, declaration in raw.items():
        where = f"outputs.{name}"
        if not isinstance(declaration, dict):
            raise _fail("An output must be an object with a 'type' and a 'value'.", where)
        if "condition" in declaration and _evaluated(
                declaration["condition"], scope, f"{where}.condition") is not True:
            continue
        kind = str(declaration.get("type", "")).lower()
        if kind not in _TYPES:
            raise _fail(f"The output type '{declaration.get('type')}' is not valid.", where)
        copy = declaration.get("copy")
        if isinstance(copy, dict):
            count = evaluate.copy_count(copy.get("count"), scope, f"{where}.copy.count")
            value: Any = [_evaluated(copy.get("input"), scope.with_copy(None, i), where)
                          for i in range(count)]
        elif "value" in declaration:
            value = _evaluated(declaration["value"], scope, where)
        else:
            raise _fail("An output needs a 'value' (or a 'copy').", where)
        try:
            _check_parameter(name, kind, {}, value, where)
        except TemplateError:
            raise _fail(f"The template output '{name}' is not valid: the value is of type "
                        f"{type_name(value)}, not {_TYPES[kind]}.", where) from None
        out[camel_case(name)] = {"type": _TYPES[kind]} if kind.startswith("secure") else \
            {"type": _TYPES[kind], "value": value}
    return out


__all__ = ["ExpressionError", "Facts", "Plan", "Resource", "TemplateError", "body", "outputs",
           "plan"]
