"""Every name in an ARM path checked against its type's rule before any route runs.

Before routing (``paths.ArmPathMiddleware``, on the canonical path), ``name_problem`` walks
``/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}/{childType}/
{childName}...`` and checks each name by ``model/names.py``:

* PUT (a create or replace): a name its type's rule refuses is a 400
  ``InvalidResourceName`` naming the rule, and nothing runs;
* every other method: only names that can never exist (a control character, a NUL) are
  refused, as a 404: a resource stored before these rules stays readable and deletable.

Resource group names keep their own check (``model/resourcegroup.py``, in the route).
"""

from __future__ import annotations

import re

from scaleset.model import names


def path_names(path: str) -> list[tuple[str, str]]:
    """``(resource type, name)`` for each typed name in an ARM path, outermost first.

    >>> path_names("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
    ...            "loadBalancers/lb/probes/p")
    [('Microsoft.Network/loadBalancers', 'lb'), ('Microsoft.Network/loadBalancers/probes', 'p')]
    """
    segments = path.split("/")  # ASGI's path is already percent-decoded
    found: list[tuple[str, str]] = []
    for i, segment in enumerate(segments):
        if segment.lower() != "providers" or i + 3 >= len(segments):
            continue
        resource_type = segments[i + 1]
        rest = segments[i + 2:]
        for j in range(0, len(rest) - 1, 2):
            if rest[j].lower() == "providers":  # an extension resource: its own walk
                break
            resource_type = f"{resource_type}/{rest[j]}"
            found.append((resource_type, rest[j + 1]))
    return found


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""A control character (C0 or DEL): no name may hold one."""


def _control_problem(path: str) -> str | None:
    if _CONTROL.search(path) is not None:
        return "a name in the path holds control characters; no resource can be named so"
    return None


def name_problem(method: str, path: str) -> tuple[int, str, str, str] | None:
    """``(status, code, message, target)`` refusing the request's path names, or None."""
    if method.upper() != "PUT":
        reason = _control_problem(path)
        return None if reason is None else (404, "ResourceNotFound", reason, "name")
    for resource_type, name in path_names(path):
        reason = names.problem(resource_type, name)
        if reason is not None:
            return (400, "InvalidResourceName",
                    f"The resource name {reason} (resource type '{resource_type}').", "name")
    reason = _control_problem(path)
    return None if reason is None else (400, "InvalidResourceName", reason, "name")
