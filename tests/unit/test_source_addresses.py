"""The address rule for server-side fetches (``artifacts.addresses``), pure.

What a user would notice: a ``source.uri`` or ``fileUris`` naming any of these
addresses is refused, however the address is spelled; a public one is not.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset.artifacts import addresses

REFUSED_V4 = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "192.0.0.0/24",
    "198.18.0.0/15", "192.0.2.0/24", "255.255.255.255/32",
]
REFUSED_V6 = ["::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8", "fec0::/10",
              "2001:db8::/32"]
PUBLIC_V4 = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "151.101.1.69"]
PUBLIC_V6 = ["2606:4700:4700::1111", "2001:4860:4860::8888"]


def _in(network: str) -> st.SearchStrategy[addresses.IPAddress]:
    net = ipaddress.ip_network(network)
    return st.integers(0, net.num_addresses - 1).map(lambda i: net[i])


refused_v4 = st.one_of(*(_in(n) for n in REFUSED_V4))
any_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(refused_v4)
def test_every_loopback_private_link_local_cgnat_multicast_or_reserved_v4_is_refused(
        address: ipaddress.IPv4Address) -> None:
    assert addresses.refusal(address) is not None
    assert not addresses.allowed(address)
    assert addresses.allowed(address, allow_private=True)  # --allow-private-sources


@given(st.one_of(*(_in(n) for n in REFUSED_V6)))
def test_every_loopback_unique_local_link_local_or_multicast_v6_is_refused(
        address: ipaddress.IPv6Address) -> None:
    assert addresses.refusal(address) is not None


@given(any_v4)
def test_an_ipv4_address_carried_in_ipv6_is_judged_as_itself(
        address: ipaddress.IPv4Address) -> None:
    verdict = addresses.refusal(address) is None
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    nat64 = ipaddress.IPv6Address(f"64:ff9b::{address}")
    for carried in (mapped, sixtofour, nat64):
        assert (addresses.refusal(carried) is None) == verdict, carried


@pytest.mark.parametrize("text", PUBLIC_V4 + PUBLIC_V6)
def test_public_addresses_are_allowed(text: str) -> None:
    address = addresses.parse(text)
    assert address is not None and addresses.refusal(address) is None


@pytest.mark.parametrize(("text", "why"), [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("169.254.169.254", "link-local"),
    ("10.1.2.3", "private"), ("100.100.100.200", "CGNAT"), ("0.0.0.0", "unspecified"),
    ("::ffff:127.0.0.1", "loopback"), ("fe80::1%eth0", "link-local"),
    ("fd00:ec2::254", "private"), ("224.0.0.251", "multicast"),
])
def test_the_refusal_names_the_kind_of_address(text: str, why: str) -> None:
    address = addresses.parse(text)
    assert address is not None
    refusal = addresses.refusal(address)
    assert refusal is not None and why in refusal


def test_a_host_name_is_not_an_address() -> None:
    assert addresses.parse("localhost") is None
    assert addresses.parse("example.com") is None
