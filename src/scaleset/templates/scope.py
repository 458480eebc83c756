"""What an expression can see: the deployment's facts, parameters, variables, loops.

A ``Scope`` is built once per template evaluation and narrowed for each copy
loop (``with_copy``). Variables are evaluated the first time they are asked
for and remembered; one that needs itself is refused. ``reference()`` works
only where a ``resolver`` is given: at run time, after the resource exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

Resolver = Callable[[str, str | None], Mapping[str, Any]]
"""(resource id, api-version or None) → the resource as its GET returns it; raises
``TemplateError`` when it does not exist. Supplied by whoever runs the deployment."""


@dataclass(frozen=True)
class Facts:
    """Where the template is deployed: what ``subscription()``, ``resourceGroup()``,
    ``deployment()`` and ``providers()`` answer."""

    subscription_id: str
    resource_group: str
    deployment_name: str
    resource_group_location: str | None = None
    tenant_id: str = "00000000-0000-0000-0000-000000000000"
    api_versions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Lower-cased ``namespace/type`` → the api-versions the server accepts, newest first."""


@dataclass(frozen=True)
class TemplateResource:
    """A resource the template declares, as ``reference('name')`` and ``dependsOn`` find it."""

    id: str
    type: str
    name: str
    api_version: str


@dataclass
class _Variables:
    raw: Mapping[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    evaluating: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Scope:
    facts: Facts
    parameters: Mapping[str, Any]
    template: Mapping[str, Any]
    variables: _Variables
    resolver: Resolver | None = None
    copy: Mapping[str | None, int] = field(default_factory=dict)
    """Copy loop name → current index; ``None`` is the resource's own loop."""
    resources: Sequence[TemplateResource] = ()
    where: str = "template"
    """Where in the template this is evaluated; named by ``reference()``'s refusal."""

    @classmethod
    def create(cls, facts: Facts, template: Mapping[str, Any], parameters: Mapping[str, Any],
               ) -> Scope:
        raw = template.get("variables") or {}
        return cls(facts=facts, parameters=parameters, template=template,
                   variables=_Variables(raw if isinstance(raw, Mapping) else {}))

    def with_copy(self, name: str | None, index: int) -> Scope:
        return replace(self, copy={**self.copy, name: index})

    def at_run_time(self, resolver: Resolver, resources: Sequence[TemplateResource]) -> Scope:
        return replace(self, resolver=resolver, resources=resources)

    def at(self, where: str) -> Scope:
        return replace(self, where=where)
