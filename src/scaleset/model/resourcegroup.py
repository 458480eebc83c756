"""The resource group (``Microsoft.Resources/resourceGroups``): a named container with a
location and tags.

ARM's rules: a name of 1-90 characters, letters (any script), digits, ``_``,
``-``, ``.``, ``(`` and ``)``, not ending in ``.``; ``location`` is required;
at most 50 tags, names up to 512 characters, values up to 256.
``provisioningState`` is the server's (``Succeeded``, or ``Deleting`` while a
delete runs); ``managedBy`` is the id of whatever manages the group, kept as
written.

>>> ResourceGroup.model_validate({"location": "westus", "tags": {"env": "dev"}}).tags
{'env': 'dev'}
>>> check_name("web-(prod).1")
'web-(prod).1'
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model.base import ArmModel

RESOURCE_GROUP_TYPE: Final = "Microsoft.Resources/resourceGroups"
SUCCEEDED: Final = "Succeeded"
DELETING: Final = "Deleting"
MAX_TAGS: Final = 50
MAX_TAG_NAME: Final = 512
MAX_TAG_VALUE: Final = 256

# \w is letters and digits of any script plus '_' (ARM allows Unicode letters).
_NAME = re.compile(r"^[\w\-.()]{1,90}$")


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid resource group name, or None when it is."""
    if not 1 <= len(name) <= 90:
        return f"it is {len(name)} characters long; use 1 to 90"
    if not _NAME.match(name):
        bad = "".join(sorted({ch for ch in name if not _NAME.match(ch)}))
        return f"it has these invalid characters: '{bad}'"
    if name.endswith("."):
        return "it ends with '.'"
    return None


def check_name(name: str) -> str:
    """``name`` when it is a valid resource group name; else ``ValueError`` saying why."""
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def check_tags(tags: dict[str, str] | None) -> dict[str, str] | None:
    """``tags`` within ARM's limits (count, name and value lengths); else ``ValueError``."""
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags are allowed; got {len(tags)}")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_NAME:
            raise ValueError(f"tag name '{key[:40]}' must be 1-{MAX_TAG_NAME} characters")
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"the value of tag '{key}' is longer than {MAX_TAG_VALUE} "
                             "characters")
    return tags


class ResourceGroup(ArmModel):
    """A resource group as a client sends it (PUT); the server fills id, name, type and
    ``properties.provisioningState``."""

    location: str = Field(min_length=1, max_length=64)
    tags: dict[str, str] | None = None
    managed_by: str | None = Field(default=None, max_length=1024)

    @field_validator("tags", mode="after")
    @classmethod
    def _tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        try:
            return check_tags(value)
        except ValueError as exc:
            raise PydanticCustomError("tags", "{reason}", {"reason": str(exc)}) from None


def group_id(subscription: str, name: str) -> str:
    """``/subscriptions/{subscription}/resourceGroups/{name}``."""
    return f"/subscriptions/{subscription}/resourceGroups/{name}"


def group_body(subscription: str, name: str, *, location: str, tags: dict[str, str] | None,
               managed_by: str | None = None, state: str = SUCCEEDED) -> dict[str, Any]:
    """The group as GET returns it (``ResourceGroup`` in the Resources API)."""
    body: dict[str, Any] = {"id": group_id(subscription, name), "name": name,
                            "type": RESOURCE_GROUP_TYPE, "location": location,
                            "properties": {"provisioningState": state}}
    if tags is not None:
        body["tags"] = dict(tags)
    if managed_by:
        body["managedBy"] = managed_by
    return body
