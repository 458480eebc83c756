"""Where instance trees live (server/instance_dir.py): out of a 0700 data directory as root."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleset.server import instance_dir as where


def test_not_root_they_stay_in_the_data_directory(tmp_path: Path) -> None:
    assert where.instance_dir(tmp_path / "data", root=False) == tmp_path / "data" / "instances"
    assert not (tmp_path / "data" / "instances").exists()  # the driver creates it


def test_as_root_they_move_out_and_the_data_directory_links_to_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(where, "DEFAULT_ROOT", tmp_path / "var" / "instances")
    data = tmp_path / "data"
    data.mkdir()
    real = where.instance_dir(data, root=True)
    assert real.parent == tmp_path / "var" / "instances" and real.is_dir()
    assert (data / "instances").is_symlink() and (data / "instances").resolve() == real
    assert where.instance_dir(data, root=True) == real  # a restart finds the same place
    other = tmp_path / "other"
    other.mkdir()
    assert where.instance_dir(other, root=True) != real  # one directory per data directory
    # A data directory made again at the same path gets a new place: it must not adopt
    # the instances an older one left there.
    (data / "instances").unlink()
    data.rmdir()
    data.mkdir()
    assert where.instance_dir(data, root=True) not in (real, other)


def test_instance_dir_chooses_the_place_and_an_older_layout_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "instances" / "some-set").mkdir(parents=True)
    assert where.instance_dir(data, root=True) == data / "instances"  # older layout: kept
    with pytest.raises(SystemExit, match="would leave them behind"):
        where.instance_dir(data, tmp_path / "elsewhere", root=True)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    chosen = where.instance_dir(fresh, tmp_path / "chosen", root=False)
    assert chosen == (tmp_path / "chosen").resolve()
    assert (fresh / "instances").resolve() == chosen
