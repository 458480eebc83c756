"""Resource names by ARM's rules, one rule per resource type (pure).

Sources: "Naming rules and restrictions for Azure resources"
(learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules) for
length, characters and first/last character per type; "Resolve reserved resource name
errors" (.../troubleshooting/error-reserved-resource-name) for ARM's reserved words; and
Windows' reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9), which Azure refuses
as Compute names and which scaleset refuses everywhere because names become directory
and file names on the process driver. No name anywhere may hold a control character.

>>> problem("virtualMachineScaleSets", "web-1") is None
True
>>> problem("virtualMachineScaleSets", "-lead")
"'-lead' must start with a letter or digit"
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

DEVICE_NAMES: Final = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)})
"""Windows' reserved device names; also refused with an extension (``con.txt``)."""

RESERVED_WHOLE: Final = frozenset({
    "access", "app_code", "app_themes", "app_data", "app_globalresources",
    "app_localresources", "app_webreferences", "app_browsers", "azure", "bing", "bizspark",
    "biztalk", "cortana", "directx", "dotnet", "dynamics", "excel", "exchange", "forefront",
    "groove", "hololens", "hyperv", "kinect", "lync", "msdn", "o365", "office", "office365",
    "onedrive", "onenote", "outlook", "powerpoint", "sharepoint", "skype", "visio",
    "visualstudio"})
"""ARM's reserved words as a whole name (resources with a public endpoint only)."""
RESERVED_ANYWHERE: Final = ("microsoft", "windows")
RESERVED_START: Final = ("login", "xbox")


@dataclass(frozen=True, slots=True)
class NameRule:
    """What a name of one resource type may be."""

    kind: str
    """The type as a user reads it, e.g. ``virtual machine scale set``."""
    min_length: int
    max_length: int
    allowed: str
    """A regex character class body of the allowed characters."""
    allowed_text: str
    first: str
    """A regex class body for the first character."""
    first_text: str
    last: str
    """A regex class body for the last character."""
    last_text: str
    public_endpoint: bool = False
    """Whether ARM's reserved words apply (the name becomes part of a DNS name)."""
    pattern: str | None = None
    """A whole-name regex that replaces the character rules (e.g. gallery image versions)."""
    pattern_text: str = ""

    def problem(self, name: str) -> str | None:
        """Why ``name`` breaks this rule (one sentence naming the rule), or None."""
        shown = _shown(name)
        bad = sorted({ch for ch in name if _is_control(ch)})
        if bad:
            codes = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
            return f"{shown} holds control characters ({codes}); names may not"
        if not self.min_length <= len(name) <= self.max_length:
            return (f"{shown} is {len(name)} characters long; a {self.kind} name must be "
                    f"{self.min_length} to {self.max_length} characters")
        if self.pattern is not None:
            if not re.fullmatch(self.pattern, name):
                return f"{shown} is not {self.pattern_text}"
            return None
        invalid = "".join(sorted({ch for ch in name if not re.fullmatch(f"[{self.allowed}]",
                                                                         ch)}))
        if invalid:
            return (f"{shown} holds characters a {self.kind} name may not: '{invalid}'; "
                    f"use {self.allowed_text}")
        if not re.fullmatch(f"[{self.first}]", name[0]):
            return f"{shown} must start with {self.first_text}"
        if not re.fullmatch(f"[{self.last}]", name[-1]):
            return f"{shown} must end with {self.last_text}"
        stem = name.split(".", 1)[0].lower()
        if stem in DEVICE_NAMES:
            return (f"{shown} is a reserved device name ({stem.upper()}); choose another "
                    "name")
        if self.public_endpoint:
            return _reserved_word(name)
        return None


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def _shown(name: str) -> str:
    """The name quoted for a message: cut to 40 characters, control characters escaped."""
    cut = name[:40] + ("…" if len(name) > 40 else "")
    return "'" + "".join(f"\\x{ord(c):02x}" if _is_control(c) else c for c in cut) + "'"


def _reserved_word(name: str) -> str | None:
    lower = name.lower()
    if lower in RESERVED_WHOLE:
        return f"'{name}' is a reserved word of Azure Resource Manager; choose another name"
    for word in RESERVED_ANYWHERE:
        if word in lower:
            return f"'{name}' contains the reserved word '{word.upper()}'; choose another name"
    for word in RESERVED_START:
        if lower.startswith(word):
            return (f"'{name}' starts with the reserved word '{word.upper()}'; choose another "
                    "name")
    return None


_ALNUM: Final = "A-Za-z0-9"


def _common(kind: str, max_length: int, min_length: int = 1) -> NameRule:
    """Azure's rule for most Compute and Network names: letters, digits, '_', '.', '-';
    start with a letter or digit; end with one or '_'."""
    return NameRule(kind=kind, min_length=min_length, max_length=max_length,
                    allowed=_ALNUM + "_.\\-", allowed_text="letters, digits, '_', '.' and '-'",
                    first=_ALNUM, first_text="a letter or digit",
                    last=_ALNUM + "_", last_text="a letter, a digit or '_'")


RULES: Final[dict[str, NameRule]] = {
    # Compute: scale sets 1-64 (Linux; a Windows scale set's computer names are limited
    # separately by computerNamePrefix), which must not end with '.' or '-'.
    "microsoft.compute/virtualmachinescalesets": _common("virtual machine scale set", 64),
    "microsoft.compute/virtualmachinescalesets/virtualmachines": NameRule(
        kind="scale set instance id", min_length=1, max_length=10, allowed="0-9",
        allowed_text="digits", first="0-9", first_text="a digit", last="0-9",
        last_text="a digit", pattern=r"0|[1-9][0-9]{0,9}",
        pattern_text="an instance id (a number, as the list of virtualMachines shows)"),
    "microsoft.compute/virtualmachinescalesets/extensions": _common("extension", 64),
    "microsoft.compute/images": _common("image", 80),
    "microsoft.compute/galleries": NameRule(
        kind="gallery", min_length=1, max_length=80, allowed=_ALNUM + ".",
        allowed_text="letters, digits and '.'", first=_ALNUM, first_text="a letter or digit",
        last=_ALNUM, last_text="a letter or digit"),
    "microsoft.compute/galleries/images": NameRule(
        kind="gallery image", min_length=1, max_length=80, allowed=_ALNUM + "_.\\-",
        allowed_text="letters, digits, '_', '.' and '-'", first=_ALNUM,
        first_text="a letter or digit", last=_ALNUM, last_text="a letter or digit"),
    # galleries/images/versions: catalog/gallery.py's version rule (Major.Minor.Patch).
    "microsoft.network/loadbalancers": _common("load balancer", 80),
    "microsoft.network/loadbalancers/probes": _common("probe", 80),
    "microsoft.network/loadbalancers/frontendipconfigurations":
        _common("frontend IP configuration", 80),
    "microsoft.network/loadbalancers/backendaddresspools": _common("backend address pool", 80),
    "microsoft.network/loadbalancers/loadbalancingrules": _common("load balancing rule", 80),
    "microsoft.network/loadbalancers/inboundnatrules": _common("inbound NAT rule", 80),
    "microsoft.network/loadbalancers/inboundnatpools": _common("inbound NAT pool", 80),
    "microsoft.network/loadbalancers/outboundrules": _common("outbound rule", 80),
    "microsoft.network/virtualnetworks": _common("virtual network", 64, min_length=2),
    "microsoft.network/virtualnetworks/subnets": _common("subnet", 80),
    "microsoft.network/publicipaddresses": _common("public IP address", 80),
    "microsoft.network/networksecuritygroups": _common("network security group", 80),
    "microsoft.network/networksecuritygroups/securityrules": _common("security rule", 80),
    "microsoft.network/networkinterfaces": _common("network interface", 80),
    "microsoft.network/networkinterfaces/ipconfigurations": _common("IP configuration", 80),
    "microsoft.resources/deployments": NameRule(
        kind="deployment", min_length=1, max_length=64, allowed=_ALNUM + "_()\\-.",
        allowed_text="letters, digits, '_', '(', ')', '-' and '.'",
        first=_ALNUM + "_()", first_text="a letter, a digit, '_', '(' or ')'",
        last=_ALNUM + "_()\\-", last_text="a letter, a digit, '_', '(', ')' or '-'"),
    # The cluster name becomes {name}.{region}.cloudapp.azure.com: ARM's reserved words apply.
    "microsoft.servicefabric/clusters": NameRule(
        kind="Service Fabric cluster", min_length=4, max_length=23, allowed="a-z0-9\\-",
        allowed_text="lower-case letters, digits and '-'", first="a-z",
        first_text="a lower-case letter", last="a-z0-9",
        last_text="a lower-case letter or digit", public_endpoint=True),
}
"""Rules by lower-cased ``namespace/type[/childType...]``."""

SERVICE_PRINCIPAL: Final = NameRule(
    kind="service principal display", min_length=1, max_length=120,
    allowed="^<>%&\\\\?/", allowed_text="any character but '<>%&\\?/'",
    first="^\\s<>%&\\\\?/", first_text="a visible character",
    last="^\\s<>%&\\\\?/", last_text="a visible character")
"""A service principal's display name (Entra ID: 1-120 characters)."""


def rule_for(resource_type: str) -> NameRule | None:
    """The rule for ``namespace/type[/child...]`` (any case), or None when unknown."""
    return RULES.get(resource_type.lower())


def problem(resource_type: str, name: str) -> str | None:
    """Why ``name`` is not a valid name of ``resource_type``; None when it is (or the type
    has no rule here: the route then decides).

    ``resource_type`` is ``virtualMachineScaleSets`` (Compute implied) or a full
    ``Microsoft.Network/loadBalancers/probes``.
    """
    full = resource_type if "/" in resource_type or "." in resource_type \
        else f"microsoft.compute/{resource_type}"
    rule = rule_for(full)
    return rule.problem(name) if rule is not None else None


def check(resource_type: str, name: str) -> str:
    """``name`` when valid for ``resource_type``; else ``ValueError`` with the reason (for
    pydantic validators)."""
    reason = problem(resource_type, name)
    if reason is not None:
        raise ValueError(reason)
    return name
