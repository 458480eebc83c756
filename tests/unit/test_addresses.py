"""Private addresses: unique per data directory and across control planes on one machine."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from scaleset.drivers.process import addresses


def _owner(tmp_path: Path, name: str, address: str | None) -> Path:
    owner = tmp_path / name
    owner.mkdir()
    if address is not None:
        (owner / "state.json").write_text(json.dumps({"private_ip": address}, indent=1))
    return owner


def test_two_data_directories_sharing_a_block_never_share_an_address(tmp_path: Path) -> None:
    claims = addresses.Claims(tmp_path / "claims")
    block = ipaddress.IPv4Network("127.77.0.0/16")
    first = _owner(tmp_path, "a", None)
    got_a = addresses.allocate(block, [], lambda ip: claims.claim(ip, first))
    (first / "state.json").write_text(json.dumps({"private_ip": got_a}, indent=1))
    second = _owner(tmp_path, "b", None)
    got_b = addresses.allocate(block, [], lambda ip: claims.claim(ip, second))
    assert got_a == "127.77.0.1" and got_b == "127.77.0.2"


def test_a_stale_claim_is_taken_over_and_a_release_frees_the_address(tmp_path: Path) -> None:
    claims = addresses.Claims(tmp_path / "claims")
    gone = _owner(tmp_path, "gone", "127.77.0.1")
    assert claims.claim("127.77.0.1", gone)
    (gone / "state.json").unlink()
    gone.rmdir()
    fresh = _owner(tmp_path, "fresh", "127.77.0.1")
    assert claims.claim("127.77.0.1", fresh)
    other = _owner(tmp_path, "other", None)
    assert not claims.claim("127.77.0.1", other)
    claims.release("127.77.0.1", other)  # not the holder: nothing happens
    assert not claims.claim("127.77.0.1", other)
    claims.release("127.77.0.1", fresh)
    assert claims.claim("127.77.0.1", other)


def test_dot_zero_and_dot_255_are_never_handed_out() -> None:
    block = ipaddress.IPv4Network("127.77.0.0/16")
    taken = [f"127.77.0.{i}" for i in range(1, 255)]
    assert addresses.allocate(block, taken) == "127.77.1.1"
