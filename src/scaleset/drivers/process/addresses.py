"""Private IP addresses in 127.0.0.0/8: stable per instance, unique per data directory.

Linux routes the whole /8 to loopback, so every instance gets an address of
its own with no setup, and its application can bind the ports it likes.
Each data directory draws from its own /16 (picked from the directory's
path), so two control planes on one machine rarely meet; within a data
directory the lowest free address is taken and kept in the instance's state.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path


class AddressPoolExhausted(RuntimeError):
    """Every address of the data directory's /16 is taken."""


def block_for(root: Path) -> ipaddress.IPv4Network:
    """The /16 a data directory allocates from: 127.N.0.0/16 with N in 2..254.

    127.0.0.0/16 and 127.1.0.0/16 are left alone (127.0.0.1 is everyone's loopback).
    """
    digest = hashlib.sha1(str(root.resolve()).encode()).digest()
    return ipaddress.IPv4Network(f"127.{2 + digest[0] % 253}.0.0/16")


def allocate(block: ipaddress.IPv4Network, taken: Iterable[str]) -> str:
    """The lowest address of ``block`` not in ``taken`` (network and broadcast excluded)."""
    used = set(taken)
    for address in block.hosts():
        text = str(address)
        if text not in used and not text.endswith(".0") and not text.endswith(".255"):
            return text
    raise AddressPoolExhausted(f"no free private IP address left in {block}")
