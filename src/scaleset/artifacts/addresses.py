"""Which network addresses a server-side fetch may reach: the rule, pure.

``source.uri`` of an image and an extension's ``fileUris`` are fetched by the
server, from the server's network position. Without a rule, anyone allowed to
publish an image could make the server read its own loopback services, the
cloud metadata endpoint (169.254.169.254) or the private network behind it.
So an address is refused unless it is globally routable unicast, and an IPv6
address that carries an IPv4 address (mapped ``::ffff:a.b.c.d``, 6to4, Teredo,
NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it carries.

``refusal`` says why an address is refused (or ``None``); the fetchers in
``fetch.py`` ask it for every address a name resolves to, on every redirect.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK: Final = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
# IANA's special-purpose blocks, listed here as well as trusting ipaddress: its
# tables change between Python releases (3.11.7 calls 192.0.0.8 global).
_SPECIAL: Final[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = tuple(
    ipaddress.ip_network(block) for block in (
        "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
        "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16"))


def parse(text: str) -> IPAddress | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), or ``None``."""
    text = text.strip("[]")
    if "%" in text:
        text = text.split("%", 1)[0]  # a zone names an interface: link-local either way
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address; the server half is public anyway
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why a fetch may not reach ``address`` (e.g. ``"loopback"``), or ``None`` if it may."""
    inner = embedded_ipv4(address)
    if inner is not None:
        why = refusal(inner)
        return None if why is None else f"{why} (carried in {address})"
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address)
                                  and address in _THIS_NETWORK):
        return "unspecified ('this network')"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared address space (CGNAT, 100.64.0.0/10)"
    if address.is_private:
        return "private"
    if address.is_reserved or any(address in block for block in _SPECIAL
                                  if block.version == address.version):
        return "reserved"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if not address.is_global:
        return "not globally routable"
    return None


def allowed(address: IPAddress, *, allow_private: bool = False) -> bool:
    """Whether a fetch may reach ``address`` (``allow_private``: every address may)."""
    return allow_private or refusal(address) is None
