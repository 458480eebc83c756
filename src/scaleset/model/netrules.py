"""Rules shared by the ``Microsoft.Network`` resources: names, address prefixes, problems.

A :class:`Problem` is a broken rule found by a pure check (code, target,
message); the reconcile layer raises it as an ARM error. Names follow
Azure's pattern for network resources: letters, digits, ``_``, ``.`` and
``-``, starting with a letter or digit and ending with one or ``_``.

>>> name_problem("vnet-1", 2, 64) is None
True
>>> name_problem("-x", 1, 80)
"'-x' must start with a letter or digit"
>>> network("10.0.0.0/16").num_addresses
65536
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_PREFIXES: Final = 100
"""The most address prefixes one address space (or subnet) may list here."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A broken rule: ARM's error code, the field it is about, and what to do."""

    code: str
    target: str
    message: str


def name_problem(name: str, shortest: int, longest: int) -> str | None:
    """Why ``name`` is not a valid network resource name, or None."""
    if not shortest <= len(name) <= longest:
        return f"'{name[:100]}' must be {shortest} to {longest} characters long"
    if not _CHARS.match(name):
        return f"'{name}' may only contain letters, digits, '_', '.' and '-'"
    if not name[0].isalnum():
        return f"'{name}' must start with a letter or digit"
    if not (name[-1].isalnum() or name[-1] == "_"):
        return f"'{name}' must end with a letter, a digit or '_'"
    return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(prefix: str) -> Network:
    """The address range ``prefix`` (CIDR, host bits zero); ``ValueError`` saying why not."""
    if not isinstance(prefix, str) or "/" not in prefix:
        raise ValueError(f"'{prefix}' is not a CIDR address prefix such as 10.0.0.0/16")
    try:
        return ipaddress.ip_network(prefix.strip(), strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            base = ipaddress.ip_network(prefix.strip(), strict=False)
            raise ValueError(f"'{prefix}' has host bits set; the prefix is {base}") from None
        raise ValueError(f"'{prefix}' is not a CIDR address prefix such as 10.0.0.0/16"
                         ) from None


def overlap(a: Network, b: Network) -> bool:
    """Whether two ranges share an address (never across IPv4/IPv6)."""
    return a.version == b.version and a.overlaps(b)


def within(inner: Network, outer: Network) -> bool:
    """Whether ``inner`` lies entirely inside ``outer``."""
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
