"""Per-resource limits ARM itself fixes, each with its source, and their checks (pure).

Server-wide limits an operator may change (instances per scale set and in total, request
size, image archives) are settings (``reconcile/settings.py`` ``Limits``), not these.

Sources (learn.microsoft.com):

* "Azure subscription and service limits, quotas, and constraints"
  (azure-resource-manager/management/azure-subscription-service-limits): tags, load
  balancer, virtual network and network security group limits;
* "Use tags to organize your Azure resources" (.../management/tag-resources): tag names
  and values, the characters tag names may not hold;
* "Custom data and cloud-init on Azure Virtual Machines" (virtual-machines/custom-data):
  custom data is at most 64 KB once decoded;
* "Sizes for virtual machines" and the Compute RP's ``dataDisks`` (virtual-machines/sizes):
  at most 64 data disks, LUNs 0-63, unique per VM;
* the Compute RP's ``osProfile`` (virtual-machines/windows/faq, "computer name"): a
  Windows computer name is at most 15 characters, a Linux one 64; a scale set appends a
  6-character instance suffix to ``computerNamePrefix``, so the prefix is 1-9 (Windows)
  or 1-58 (Linux).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from scaleset.model import names

# Tags (tag-resources; subscription limits: "Tags per resource").
MAX_TAGS: Final = 50
MAX_TAG_NAME: Final = 512
MAX_TAG_VALUE: Final = 256
TAG_NAME_FORBIDDEN: Final = "<>%&\\?/"

# Compute (virtual machine scale sets).
CUSTOM_DATA_BYTES: Final = 64 * 1024
"""``osProfile.customData`` once base64-decoded (checked in ``commands.validate_model``)."""
MAX_DATA_DISKS: Final = 64
MAX_LUN: Final = 63
MAX_EXTENSIONS: Final = 100
"""Extensions per scale set model. ARM publishes no number; its request limit keeps real
models far below this, and scaleset runs each one on every instance."""
MAX_NICS: Final = 8
"""Network interface configurations per scale set model (the largest sizes' NIC count)."""
MAX_IP_CONFIGURATIONS: Final = 256
"""ipConfigurations per network interface (subscription limits, Networking)."""
COMPUTER_NAME_PREFIX_WINDOWS: Final = 9
COMPUTER_NAME_PREFIX_LINUX: Final = 58
MAX_ADMIN_USERNAME: Final = 64
"""Linux's limit (Windows: 20); the RP refuses longer."""
MAX_ADMIN_PASSWORD: Final = 123
"""Azure's maximum password length (Windows 123, Linux 72 are the RP's limits)."""
MAX_SHORT_STRING: Final = 1024
"""Free-text fields scaleset stores and echoes (sku names, versions, ids, time zones)."""

# Network (subscription limits, "Load balancer", "Networking").
MAX_PROBES: Final = 1000
"""Health probes per load balancer (a Standard load balancer's rule limit, 1,500, bounds
them in practice; no rule uses more than one probe)."""
MAX_LB_CHILDREN: Final = 1500
"""Rules, frontends, pools and NAT rules per list of a load balancer (Standard: 1,500
rules, 600 frontends)."""
MAX_SECURITY_RULES: Final = 1000
"""Security rules per network security group."""
MAX_SUBNETS: Final = 3000
"""Subnets per virtual network."""
MAX_ADDRESS_PREFIXES: Final = 1000
"""Address prefixes per virtual network's addressSpace (and per rule's prefix lists)."""


def tags_problem(tags: Mapping[str, str] | None) -> str | None:
    """Why ``tags`` break ARM's tag rules, or None."""
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        return (f"a resource may have at most {MAX_TAGS} tags; got {len(tags)}. Remove some "
                "or combine values into one tag")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_NAME:
            return (f"tag name '{key[:40]}' is {len(key)} characters long; use 1 to "
                    f"{MAX_TAG_NAME}")
        bad = "".join(sorted({ch for ch in key if ch in TAG_NAME_FORBIDDEN or ord(ch) < 32}))
        if bad:
            return (f"tag name '{key[:40]}' holds characters tag names may not: "
                    f"{bad!r}; none of {TAG_NAME_FORBIDDEN!r} or control characters")
        if len(value) > MAX_TAG_VALUE:
            return (f"the value of tag '{key[:40]}' is {len(value)} characters long; at most "
                    f"{MAX_TAG_VALUE}")
    return None


def check_tags(tags: dict[str, str] | None) -> dict[str, str] | None:
    """``tags`` when within the rules; else ``ValueError`` (for pydantic validators)."""
    problem = tags_problem(tags)
    if problem is not None:
        raise ValueError(problem)
    return tags


def count_problem(what: str, items: Sequence[object] | None, limit: int) -> str | None:
    """Why a list of ``what`` is too long, or None."""
    if items is not None and len(items) > limit:
        return f"at most {limit} {what} are allowed; got {len(items)}"
    return None


def luns_problem(luns: Sequence[int]) -> str | None:
    """Why data disk LUNs break the rules (count, range 0-63, uniqueness), or None."""
    if len(luns) > MAX_DATA_DISKS:
        return (f"a scale set may have at most {MAX_DATA_DISKS} data disks; got "
                f"{len(luns)}")
    for index, lun in enumerate(luns):
        if not 0 <= lun <= MAX_LUN:
            return (f"dataDisks[{index}].lun is {lun}; a LUN must be between 0 and "
                    f"{MAX_LUN}, inclusive")
        if lun in luns[:index]:
            return (f"dataDisks[{index}].lun {lun} is used by another data disk; each LUN "
                    "must be unique")
    return None


def computer_name_prefix_problem(prefix: str, windows: bool) -> str | None:
    """Why ``computerNamePrefix`` is not valid for the OS, or None."""
    top = COMPUTER_NAME_PREFIX_WINDOWS if windows else COMPUTER_NAME_PREFIX_LINUX
    if not 1 <= len(prefix) <= top:
        os_name = "Windows" if windows else "Linux"
        return (f"computerNamePrefix '{prefix[:40]}' is {len(prefix)} characters long; on "
                f"{os_name} it must be 1 to {top} (the instance suffix adds 6)")
    if any(ord(ch) < 32 for ch in prefix):
        return "computerNamePrefix holds control characters"
    return None


def _refuse(kind: str, check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    """A pydantic after-validator refusing what ``check`` finds, with its sentence."""
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem is not None:
            raise PydanticCustomError(kind, "{reason}", {"reason": problem})
        return value
    return validate


Tags = Annotated[dict[str, str] | None, AfterValidator(_refuse("tags", tags_problem))]
"""A resource's ``tags``, within ARM's tag rules."""


def named(resource_type: str) -> Any:
    """An after-validator for a name inside a body, by ``names``' rule for the type."""
    return AfterValidator(_refuse("name", lambda value: None if value is None
                                  else names.problem(resource_type, value)))


ShortString = Annotated[str | None, Field(default=None, max_length=MAX_SHORT_STRING)]
"""A free-text field stored and echoed back (bounded so no huge string is stored)."""
