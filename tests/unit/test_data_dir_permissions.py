"""``private_data_dir``: what serve does to its data directory at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleset.server.main import private_data_dir


@pytest.fixture
def restored_umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_old_data_directory_is_made_private_but_instances_and_links_are_left(
        tmp_path: Path, restored_umask: None) -> None:
    data = tmp_path / "data"
    (data / "images" / "sha256-x").mkdir(parents=True)
    (data / "instances" / "web").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    (data / "scaleset.db").write_text("")
    (data / "images" / "sha256-x" / "run.sh").write_text("#!/bin/sh\n")
    (data / "link").symlink_to(outside)
    for path, bits in ((data, 0o755), (data / "images", 0o755), (data / "scaleset.db", 0o644),
                       (data / "images" / "sha256-x" / "run.sh", 0o755),
                       (data / "instances" / "web", 0o711), (outside, 0o644)):
        os.chmod(path, bits)
    private_data_dir(data)
    assert mode(data) == mode(data / "images") == 0o700
    assert mode(data / "scaleset.db") == 0o600
    assert mode(data / "images" / "sha256-x" / "run.sh") == 0o700  # still runs
    assert mode(data / "instances" / "web") == 0o711  # the driver's
    assert mode(outside) == 0o644  # a link is not followed out
    # From now on what the process creates is private.
    (data / "new.json").write_text("{}")
    assert mode(data / "new.json") == 0o600


def test_a_missing_data_directory_is_created_0700(tmp_path: Path,
                                                 restored_umask: None) -> None:
    private_data_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a" / "b") == 0o700
