"""Private IP addresses in 127.0.0.0/8: stable per instance, unique per data directory.

Linux routes the whole /8 to loopback, so every instance gets an address of
its own with no setup, and its application can bind the ports it likes.
Each data directory draws from its own /16 (picked from the directory's
path), so two control planes on one machine rarely meet; within a data
directory the lowest free address is taken and kept in the instance's state,
and a machine-wide claim (``Claims``) keeps two data directories that share
a /16 from handing out the same address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


class AddressPoolExhausted(RuntimeError):
    """Every address of the data directory's /16 is taken."""


def block_for(root: Path) -> ipaddress.IPv4Network:
    """The /16 a data directory allocates from: 127.N.0.0/16 with N in 2..254.

    127.0.0.0/16 and 127.1.0.0/16 are left alone (127.0.0.1 is everyone's loopback).
    """
    digest = hashlib.sha1(str(root.resolve()).encode()).digest()
    return ipaddress.IPv4Network(f"127.{2 + digest[0] % 253}.0.0/16")


def allocate(block: ipaddress.IPv4Network, taken: Iterable[str],
             claim: Callable[[str], bool] = lambda _address: True) -> str:
    """The lowest address of ``block`` not in ``taken`` that ``claim`` grants.

    Addresses ending in .0 or .255 are skipped (they look like network and
    broadcast addresses to people and some tools).
    """
    used = set(taken)
    for address in block.hosts():
        text = str(address)
        if text in used or text.endswith(".0") or text.endswith(".255"):
            continue
        if claim(text):
            return text
    raise AddressPoolExhausted(f"no free private IP address left in {block}")


class Claims:
    """Machine-wide claims on addresses, so two data directories never hand out the same one.

    Each claimed address is a file named after it in ``directory`` (created with
    ``O_EXCL``) holding the claiming instance's directory. A claim whose owner
    no longer exists, or no longer holds that address, is stale and is taken over.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def claim(self, address: str, owner: Path) -> bool:
        """Claim ``address`` for ``owner``; ``False`` if someone else holds it."""
        path = self.directory / address
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder(path)
                if holder == owner.resolve():
                    return True
                if holder is not None and _holds(holder, address):
                    return False
                path.unlink(missing_ok=True)  # stale: its owner is gone or moved on
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(owner.resolve()))
            return True
        return False

    def release(self, address: str, owner: Path) -> None:
        path = self.directory / address
        if self._holder(path) == owner.resolve():
            path.unlink(missing_ok=True)

    @staticmethod
    def _holder(path: Path) -> Path | None:
        try:
            return Path(path.read_text().strip())
        except OSError:
            return None


def _holds(owner: Path, address: str) -> bool:
    try:
        return f'"private_ip": "{address}"' in (owner / "state.json").read_text()
    except FileNotFoundError:
        return owner.is_dir()  # being created: its state is written just after the claim
    except OSError:
        return False


def default_claims() -> Claims:
    """Claims shared by every control plane of this user on this machine."""
    return Claims(Path(tempfile.gettempdir()) / f"scaleset-addresses-{os.getuid()}")
