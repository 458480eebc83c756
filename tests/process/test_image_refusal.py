"""Publishing an image version that would escape its tree is refused and changes nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.process.fleet import VERSIONS, WEBAPP, Fleet

Member = Callable[[tarfile.TarFile], None]


def _file(name: str, content: bytes = b"owned\n") -> Member:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(content))
    return add


def _symlink(name: str, target: str) -> Member:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        archive.addfile(info)
    return add


def _tarball(path: Path, extra: Member) -> Path:
    """webapp 1.1.0's files plus one member ``extra`` (after them, as an attacker would)."""
    with tarfile.open(path, "w:gz") as archive:
        for source in sorted((WEBAPP / "1.1.0").iterdir()):
            archive.add(source, arcname=source.name)
        extra(archive)
    return path


def _snapshot(fleet: Fleet) -> tuple[list[str], list[str], list[str]]:
    """What a refused publish must not change: listed versions and the artifact store."""
    listed = [v["name"] for v in fleet.call("GET", VERSIONS)]
    images = fleet.data_dir / "images"
    stored = sorted(p.name for p in (images / "sha256").iterdir())
    staging = sorted(p.name for p in (images / ".tmp").iterdir())
    return listed, stored, staging


@pytest.mark.parametrize(("member", "entry", "why"), [
    (_file("../evil"), "../evil", '".." components are not allowed'),
    (_file("sub/../../evil"), "sub/../../evil", '".." components are not allowed'),
    (_file("/tmp/evil"), "/tmp/evil", "absolute paths are not allowed"),
    (_symlink("escape", "../../../etc/passwd"), "escape", "climbs out of the image"),
    (_symlink("escape", "/etc/passwd"), "escape", "is absolute"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink-climbs", "symlink-absolute"])
def test_an_escaping_tarball_is_refused_naming_the_entry(
        fleet: Fleet, tmp_path: Path, member: Member, entry: str, why: str) -> None:
    fleet.publish("1.0.0")
    before = _snapshot(fleet)
    assert before[0] == ["1.0.0"] and len(before[1]) == 1
    tarball = _tarball(tmp_path / "evil.tar.gz", member)

    response = fleet.client.put(f"{VERSIONS}/1.1.0", params={"api-version": "2026-04-01"},
                                json={"location": "westus",
                                      "properties": {"source": {"path": str(tarball)}}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert f'refused tar member "{entry}"' in error["message"]
    assert why in error["message"]
    assert error["target"] == "properties.source.path"
    assert _snapshot(fleet) == before  # no version listed, nothing stored, nothing staged
    assert fleet.client.get(f"{VERSIONS}/1.1.0",
                            params={"api-version": "2026-04-01"}).status_code == 404
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_a_published_version_never_changes_content(fleet: Fleet, tmp_path: Path) -> None:
    first = fleet.publish("1.0.0")
    digest = first["properties"]["artifact"]["digest"]
    before = _snapshot(fleet)

    # The same content again is the same version: accepted, nothing new stored.
    again = fleet.call("PUT", f"{VERSIONS}/1.0.0", {
        "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.0.0")}}},
        expect=200)
    assert again["properties"]["artifact"]["digest"] == digest
    assert _snapshot(fleet) == before

    # Different content under the same version: a conflict, and the version is unchanged.
    response = fleet.client.put(f"{VERSIONS}/1.0.0", params={"api-version": "2026-04-01"},
                                json={"location": "westus", "properties": {
                                    "source": {"path": str(WEBAPP / "1.1.0")}}})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert "1.0.0" in error["message"] and digest in error["message"]
    shown = fleet.call("GET", f"{VERSIONS}/1.0.0")
    assert shown["properties"]["artifact"]["digest"] == digest
    listed, stored, staging = _snapshot(fleet)
    assert listed == before[0] and staging == before[2]
    assert stored == before[1], "a refused publish should store no artifact"


def test_an_os_type_that_contradicts_image_json_is_refused_and_stores_nothing(
        fleet: Fleet) -> None:
    before = _snapshot(fleet)
    response = fleet.client.put(f"{VERSIONS}/1.1.0", params={"api-version": "2026-04-01"},
                                json={"location": "westus", "properties": {
                                    "osDiskImage": {"operatingSystem": "Windows"},
                                    "source": {"path": str(WEBAPP / "1.1.0")}}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["target"] == "properties.osDiskImage.operatingSystem"
    assert "Linux" in error["message"] and "Windows" in error["message"]
    assert _snapshot(fleet) == before
