"""The OData ``$filter`` subset ARM's resource and resource-group lists take.

``field eq 'value'`` and ``startswith(field, 'value')`` clauses joined by
``and``; fields ``resourceGroup``, ``name``, ``location``, ``resourceType``,
``tagName``, ``tagValue`` (case-insensitive, as are the values compared,
except tag values). That is everything ``az group list --tag`` and
``az resource list`` send. Anything else is refused (400) rather than
ignored, so a client never reads an unfiltered list as a filtered one.

>>> [c.field for c in parse("resourceGroup eq 'rg' and tagname eq 'env'")]
['resourcegroup', 'tagname']
>>> matches(parse("tagName eq 'env' and tagValue eq 'dev'"), {"tags": {"Env": "dev"}})
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from scaleset.errors import InvalidParameter

FILTER: Final = "$filter"
FIELDS: Final = ("resourcegroup", "name", "location", "resourcetype", "tagname", "tagvalue")
MAX_LENGTH: Final = 2048

_STRING = r"'(?P<value>(?:[^']|'')*)'"
_EQ = re.compile(r"^\s*(?P<field>[A-Za-z]+)\s+eq\s+" + _STRING + r"\s*$", re.IGNORECASE)
_STARTS = re.compile(r"^\s*startswith\s*\(\s*(?P<field>[A-Za-z]+)\s*,\s*" + _STRING
                     + r"\s*\)\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    """Lower-cased field name."""
    value: str
    prefix: bool = False
    """``startswith`` rather than ``eq``."""


def parse(text: str | None) -> list[Clause]:
    """The clauses of a ``$filter``; none for an absent or empty one; 400 for anything
    outside the subset."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_LENGTH:
        raise InvalidParameter(f"$filter is longer than {MAX_LENGTH} characters",
                               target=FILTER)
    clauses = []
    for part in _AND.split(text.strip()):
        match = _EQ.match(part) or _STARTS.match(part)
        if match is None or match["field"].lower() not in FIELDS:
            raise InvalidParameter(
                f"$filter clause '{part.strip()}' is not supported; use \"<field> eq "
                "'<value>'\" or \"startswith(<field>, '<value>')\" joined by 'and', with "
                "fields resourceGroup, name, location, resourceType, tagName, tagValue",
                target=FILTER)
        clauses.append(Clause(match["field"].lower(), match["value"].replace("''", "'"),
                              prefix=match.re is _STARTS))
    names = [c for c in clauses if c.field == "tagname"]
    if any(c.field == "tagvalue" for c in clauses) and not names:
        raise InvalidParameter("$filter: tagValue needs a tagName clause beside it",
                               target=FILTER)
    return clauses


def _same(value: str, wanted: str, prefix: bool, *, fold: bool = True) -> bool:
    if fold:
        value, wanted = value.lower(), wanted.lower()
    return value.startswith(wanted) if prefix else value == wanted


def _location(value: str) -> str:
    return value.replace(" ", "").lower()


def matches(clauses: Sequence[Clause], resource: Mapping[str, Any],
            resource_group: str = "") -> bool:
    """Whether a resource (its GET body) in ``resource_group`` passes every clause.

    The tag clauses together mean one tag: a tag named ``tagName`` whose value is
    ``tagValue``."""
    tags = {str(k): str(v) for k, v in (resource.get("tags") or {}).items()}
    tag_names = [c for c in clauses if c.field == "tagname"]
    tag_values = [c for c in clauses if c.field == "tagvalue"]
    for clause in clauses:
        if clause.field == "resourcegroup" and not _same(resource_group, clause.value,
                                                          clause.prefix):
            return False
        if clause.field == "name" and not _same(str(resource.get("name", "")), clause.value,
                                                clause.prefix):
            return False
        if clause.field == "location" and not _same(
                _location(str(resource.get("location", ""))), _location(clause.value),
                clause.prefix):
            return False
        if clause.field == "resourcetype" and not _same(str(resource.get("type", "")),
                                                        clause.value, clause.prefix):
            return False
    for name in tag_names:
        found = [v for k, v in tags.items() if _same(k, name.value, name.prefix)]
        if not found:
            return False
        if tag_values and not any(_same(v, c.value, c.prefix, fold=False)
                                  for v in found for c in tag_values):
            return False
    return True
