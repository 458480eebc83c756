"""What an extension is, decided once: its publisher and type name its kind.

Azure matches an extension by publisher *and* type, case-insensitively;
a type alone is not enough (anyone may publish an ``ApplicationHealthLinux``).
Requirement checks, the health-source test, the simulator and the process
driver's handlers all ask :func:`kind_of`, so they cannot disagree.

>>> kind_of("Microsoft.ManagedServices", "ApplicationHealthLinux")
<ExtensionKind.APPLICATION_HEALTH: 'ApplicationHealth'>
>>> kind_of("Contoso", "ApplicationHealthLinux")
<ExtensionKind.OTHER: 'Other'>
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ExtensionKind(StrEnum):
    APPLICATION_HEALTH = "ApplicationHealth"
    SERVICE_FABRIC = "ServiceFabric"
    CUSTOM_SCRIPT = "CustomScript"
    OTHER = "Other"


HANDLERS: Final[dict[tuple[str, str], ExtensionKind]] = {
    ("microsoft.managedservices", "applicationhealthlinux"): ExtensionKind.APPLICATION_HEALTH,
    ("microsoft.managedservices", "applicationhealthwindows"): ExtensionKind.APPLICATION_HEALTH,
    ("microsoft.azure.servicefabric", "servicefabricnode"): ExtensionKind.SERVICE_FABRIC,
    ("microsoft.azure.servicefabric", "servicefabriclinuxnode"): ExtensionKind.SERVICE_FABRIC,
    ("microsoft.azure.extensions", "customscript"): ExtensionKind.CUSTOM_SCRIPT,
    ("microsoft.compute", "customscriptextension"): ExtensionKind.CUSTOM_SCRIPT,
}
"""(publisher, type), case-folded, of every extension scaleset knows."""


def kind_of(publisher: object, type_: object) -> ExtensionKind:
    """The kind of the extension ``publisher``/``type_`` (OTHER when unknown or not text)."""
    if not isinstance(publisher, str) or not isinstance(type_, str):
        return ExtensionKind.OTHER
    return HANDLERS.get((publisher.lower(), type_.lower()), ExtensionKind.OTHER)


def known(kind: ExtensionKind) -> list[str]:
    """``publisher.type`` of every extension of ``kind``, for messages.

    >>> known(ExtensionKind.SERVICE_FABRIC)
    ['microsoft.azure.servicefabric.servicefabriclinuxnode', \
'microsoft.azure.servicefabric.servicefabricnode']
    """
    return sorted(f"{p}.{t}" for (p, t), k in HANDLERS.items() if k is kind)
