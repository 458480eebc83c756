"""The artifact store: digests, idempotent ingest, and every refusal leaving the store untouched."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset.artifacts import (
    Artifact,
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    ImageManifest,
    digest_tree,
    parse_manifest,
)

MANIFEST = {"osType": "Linux", "entrypoint": ["python3", "app.py"], "version": "1.1.0",
            "description": "test image", "x-team": "web"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "images" / "webapp"


def make_image(root: Path, manifest: object = MANIFEST) -> Path:
    """A small image tree: manifest, an executable, a nested file, a link and an empty dir."""
    root.mkdir(parents=True)
    (root / "image.json").write_text(json.dumps(manifest))
    (root / "app.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\nexec python3 app.py\n")
    (root / "run.sh").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "config.ini").write_bytes(b"[app]\nport = 8080\n")
    (root / "etc" / "current").symlink_to("config.ini")
    (root / "var").mkdir()
    return root


def tar_of(directory: Path, tarball: Path, arcname: str = ".") -> Path:
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(directory, arcname=arcname)
    return tarball


def snapshot(root: Path) -> list[str]:
    """Everything under the store root, to show a refused ingest left nothing behind."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "images")


# -- digests and ingest --------------------------------------------------------------------


def test_a_directory_and_tarballs_of_it_get_the_same_digest(
        tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "webapp-1.1.0")
    flat = tar_of(image, tmp_path / "flat.tar.gz")
    foldered = tar_of(image, tmp_path / "foldered.tgz", arcname="webapp-1.1.0")

    from_dir = store.ingest(image)
    from_flat = store.ingest(flat)
    from_folder = store.ingest(foldered)

    assert from_dir.digest == from_flat.digest == from_folder.digest == digest_tree(image)
    assert from_dir.digest.startswith("sha256:") and len(from_dir.digest) == 7 + 64
    assert from_dir.path == store.root / "sha256" / from_dir.digest.removeprefix("sha256:")
    assert store.list() == [from_dir]


def test_the_stored_tree_is_the_source_tree(tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "image")
    artifact = store.ingest(tar_of(image, tmp_path / "image.tar.gz", arcname="image"))

    assert (artifact.path / "etc" / "config.ini").read_bytes() == b"[app]\nport = 8080\n"
    assert os.readlink(artifact.path / "etc" / "current") == "config.ini"
    assert os.access(artifact.path / "run.sh", os.X_OK)
    assert not (artifact.path / "app.py").stat().st_mode & stat.S_IXUSR
    assert (artifact.path / "var").is_dir()
    assert artifact.manifest.os_type == "Linux"
    assert artifact.manifest.entrypoint == ["python3", "app.py"]
    assert artifact.manifest.version == "1.1.0"


def test_the_digest_depends_on_content_and_executable_bit_only(tmp_path: Path) -> None:
    image = make_image(tmp_path / "image")
    before = digest_tree(image)
    os.utime(image / "app.py", (0, 0))
    (image / "app.py").chmod(0o600)
    assert digest_tree(image) == before

    (image / "app.py").chmod(0o700)
    assert digest_tree(image) != before
    (image / "app.py").chmod(0o644)
    (image / "app.py").write_text("print('bye')\n")
    assert digest_tree(image) != before


def test_ingesting_the_same_content_again_returns_the_stored_artifact(
        tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "image")
    first = store.ingest(image)
    stored_inode = first.path.stat().st_ino
    listing = snapshot(store.root)

    again = store.ingest(image)
    from_tar = store.ingest(tar_of(image, tmp_path / "image.tar.gz"))

    assert again == first == from_tar
    assert first.path.stat().st_ino == stored_inode
    assert snapshot(store.root) == listing


def test_get_path_contains_and_list(tmp_path: Path, store: ArtifactStore) -> None:
    one = store.ingest(make_image(tmp_path / "one"))
    two = store.ingest(make_image(tmp_path / "two", {**MANIFEST, "version": "2.0.0"}))

    assert store.get(one.digest) == one
    assert store.path(two.digest) == two.path
    assert one.digest in store and two.digest in store
    assert store.list() == sorted([one, two], key=lambda artifact: artifact.digest)
    assert "sha256:" + "0" * 64 not in store
    assert "sha256:../../etc" not in store
    assert 42 not in store


def test_an_unknown_or_malformed_digest_is_not_found(store: ArtifactStore) -> None:
    for digest in ["sha256:" + "0" * 64, "sha256:../../etc", "md5:abc", ""]:
        with pytest.raises(ArtifactNotFound) as caught:
            store.get(digest)
        assert caught.value.digest == digest
        assert caught.value.status == 404
        assert digest in str(caught.value)
        with pytest.raises(ArtifactNotFound):
            store.path(digest)


def test_the_example_webapp_versions_are_valid_distinct_images(store: ArtifactStore) -> None:
    artifacts = {version: store.ingest(EXAMPLES / version)
                 for version in ["1.0.0", "1.1.0", "1.2.0"]}

    assert {a.manifest.version for a in artifacts.values()} == {"1.0.0", "1.1.0", "1.2.0"}
    assert len({a.digest for a in artifacts.values()}) == 3
    assert all(a.manifest.entrypoint == ["python3", "app.py"] for a in artifacts.values())


# -- refusals: each names the entry and leaves the store as it was ---------------------------


def add_member(archive: tarfile.TarFile, name: str, *, data: bytes = b"",
               kind: bytes = tarfile.REGTYPE, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        archive.addfile(info)


Member = tuple[str, dict[str, object]]


def crafted_tar(path: Path, members: list[Member]) -> Path:
    """A .tar.gz with a valid manifest first, then ``members`` written exactly as given."""
    with tarfile.open(path, "w:gz") as archive:
        add_member(archive, "image.json", data=json.dumps(MANIFEST).encode())
        for name, options in members:
            add_member(archive, name, **options)  # type: ignore[arg-type]
    return path


REFUSED_MEMBERS: dict[str, tuple[list[Member], str]] = {
    "absolute path": ([("/etc/cron.d/evil", {"data": b"x"})], "/etc/cron.d/evil"),
    "dot-dot component": ([("lib/../../evil", {"data": b"x"})], "lib/../../evil"),
    "symlink to an absolute path": (
        [("passwd", {"kind": tarfile.SYMTYPE, "linkname": "/etc/passwd"})], "passwd"),
    "symlink climbing out": (
        [("etc/escape", {"kind": tarfile.SYMTYPE, "linkname": "../../outside"})], "etc/escape"),
    "a chain of links that escapes only together": (
        [("sub", {"kind": tarfile.DIRTYPE}),
         ("d", {"kind": tarfile.SYMTYPE, "linkname": "sub"}),
         ("sub/up", {"kind": tarfile.SYMTYPE, "linkname": ".."}),
         ("e", {"kind": tarfile.SYMTYPE, "linkname": "d/up/.."})], "e"),
    "hard link out of the tree": (
        [("shadow", {"kind": tarfile.LNKTYPE, "linkname": "../etc/shadow"})], "shadow"),
    "hard link to an absolute path": (
        [("shadow", {"kind": tarfile.LNKTYPE, "linkname": "/etc/shadow"})], "shadow"),
    "hard link to a member not yet extracted": (
        [("early", {"kind": tarfile.LNKTYPE, "linkname": "late"}),
         ("late", {"data": b"x"})], "early"),
    "character device": ([("dev/null", {"kind": tarfile.CHRTYPE})], "dev/null"),
    "block device": ([("dev/sda", {"kind": tarfile.BLKTYPE})], "dev/sda"),
    "fifo": ([("queue", {"kind": tarfile.FIFOTYPE})], "queue"),
}


@pytest.mark.parametrize("case", list(REFUSED_MEMBERS))
def test_a_dangerous_tar_member_is_refused_by_name_and_nothing_is_stored(
        case: str, tmp_path: Path, store: ArtifactStore) -> None:
    members, offender = REFUSED_MEMBERS[case]
    tarball = crafted_tar(tmp_path / "evil.tar.gz", members)
    before = snapshot(store.root)

    with pytest.raises(ArtifactError) as caught:
        store.ingest(tarball)

    assert caught.value.entry == offender
    assert f'"{offender}"' in str(caught.value)
    assert snapshot(store.root) == before
    assert not (tmp_path / "outside").exists()


def test_a_prefixed_tarball_may_not_hard_link_outside_its_folder(
        tmp_path: Path, store: ArtifactStore) -> None:
    tarball = tmp_path / "prefixed.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        add_member(archive, "webapp/image.json", data=json.dumps(MANIFEST).encode())
        add_member(archive, "other", data=b"x")
        add_member(archive, "webapp/link", kind=tarfile.LNKTYPE, linkname="other")
    # "other" sits beside the folder, so the archive is flat and has no top-level image.json.
    with pytest.raises(ArtifactError):
        store.ingest(tarball)

    with tarfile.open(tarball, "w:gz") as archive:
        add_member(archive, "webapp/image.json", data=json.dumps(MANIFEST).encode())
        add_member(archive, "webapp/link", kind=tarfile.LNKTYPE, linkname="elsewhere/file")
    with pytest.raises(ArtifactError) as caught:
        store.ingest(tarball)
    assert caught.value.entry == "webapp/link"


def test_hard_links_inside_the_tree_are_kept(tmp_path: Path, store: ArtifactStore) -> None:
    tarball = crafted_tar(tmp_path / "links.tar.gz", [
        ("data.bin", {"data": b"payload"}),
        ("copy.bin", {"kind": tarfile.LNKTYPE, "linkname": "data.bin"}),
    ])
    artifact = store.ingest(tarball)
    assert (artifact.path / "copy.bin").read_bytes() == b"payload"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../etc/../../../x"])
def test_a_directory_with_a_symlink_out_of_it_is_refused(
        target: str, tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "image")
    (image / "sub").mkdir()
    (image / "sub" / "escape").symlink_to(target)
    before = snapshot(store.root)

    with pytest.raises(ArtifactError) as caught:
        store.ingest(image)

    assert caught.value.entry == "sub/escape"
    assert '"sub/escape"' in str(caught.value)
    assert snapshot(store.root) == before


def test_a_directory_with_a_fifo_is_refused(tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "image")
    os.mkfifo(image / "var" / "pipe")
    before = snapshot(store.root)

    with pytest.raises(ArtifactError, match="FIFO") as caught:
        store.ingest(image)

    assert caught.value.entry == "var/pipe"
    assert snapshot(store.root) == before


BAD_MANIFESTS: dict[str, tuple[bytes | None, list[str]]] = {
    "missing": (None, ["image.json is missing"]),
    "not JSON": (b'{"osType": "Linux",', ["not valid JSON", "line 1"]),
    "not UTF-8": (b'{"osType": "\xff"}', ["not UTF-8"]),
    "not an object": (b'["python3"]', ["JSON object"]),
    "no osType": (b'{"entrypoint": ["a"]}', ['"osType"', '"Linux" or "Windows"']),
    "bad osType": (b'{"osType": "Plan9", "entrypoint": ["a"]}', ['"osType"', '"Windows"']),
    "empty entrypoint": (b'{"osType": "Linux", "entrypoint": []}',
                         ['"entrypoint"', "list of strings"]),
    "entrypoint a string": (b'{"osType": "Linux", "entrypoint": "python3 app.py"}',
                            ['"entrypoint"', 'e.g. ["python3", "app.py"]']),
    "blank program": (b'{"osType": "Linux", "entrypoint": [" "]}',
                      ['"entrypoint"', "name the program"]),
    "version a number": (b'{"osType": "Linux", "entrypoint": ["a"], "version": 1}',
                         ['"version"', "string"]),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
@pytest.mark.parametrize("as_tar", [False, True], ids=["directory", "tarball"])
def test_a_missing_or_invalid_manifest_is_refused_naming_the_field(
        case: str, as_tar: bool, tmp_path: Path, store: ArtifactStore) -> None:
    raw, phrases = BAD_MANIFESTS[case]
    image = tmp_path / "image"
    image.mkdir()
    (image / "app.py").write_text("")
    if raw is not None:
        (image / "image.json").write_bytes(raw)
    source = tar_of(image, tmp_path / "image.tar.gz") if as_tar else image
    before = snapshot(store.root)

    with pytest.raises(ArtifactError) as caught:
        store.ingest(source)

    assert caught.value.entry == "image.json"
    for phrase in phrases:
        assert phrase in str(caught.value)
    assert snapshot(store.root) == before


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"\x1f\x8b\x08\x00garbage"],
                         ids=["text", "empty", "truncated gzip"])
def test_a_file_that_is_not_a_gzip_tarball_is_refused(
        content: bytes, tmp_path: Path, store: ArtifactStore) -> None:
    source = tmp_path / "image.tar.gz"
    source.write_bytes(content)
    before = snapshot(store.root)

    with pytest.raises(ArtifactError, match="gzip") as caught:
        store.ingest(source)

    assert caught.value.entry == str(source)
    assert snapshot(store.root) == before


def test_an_uncompressed_tar_or_a_missing_source_is_refused(
        tmp_path: Path, store: ArtifactStore) -> None:
    image = make_image(tmp_path / "image")
    plain = tmp_path / "image.tar"
    with tarfile.open(plain, "w") as archive:
        archive.add(image, arcname=".")
    for source in [plain, tmp_path / "nowhere"]:
        with pytest.raises(ArtifactError) as caught:
            store.ingest(source)
        assert caught.value.entry == str(source)
    assert store.list() == []


# -- the manifest model ----------------------------------------------------------------------


def test_the_manifest_keeps_unknown_keys_and_speaks_camel_case() -> None:
    manifest = parse_manifest(json.dumps(MANIFEST).encode())
    assert manifest.os_type == "Linux"
    assert manifest.to_wire() == MANIFEST
    assert ImageManifest(os_type="Windows", entrypoint=["app.exe"]).to_wire() == {
        "osType": "Windows", "entrypoint": ["app.exe"]}


def test_manifest_errors_are_400s_naming_the_field() -> None:
    with pytest.raises(ArtifactError) as caught:
        parse_manifest(b'{"entrypoint": []}')
    error = caught.value
    assert error.status == 400
    assert error.target == "osType"
    assert '"osType"' in error.message and '"entrypoint"' in error.message


# -- properties over random trees ------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=8)
# Directory components start with "d" and file names with "f", so no path is both.
dir_paths = st.lists(names.map(lambda name: "d" + name), max_size=2)
file_specs = st.dictionaries(
    keys=st.tuples(dir_paths, names.map(lambda name: "f" + name)).map(
        lambda parts: "/".join([*parts[0], parts[1]])),
    values=st.tuples(st.binary(max_size=300), st.booleans()),
    max_size=8,
)


def build_tree(root: Path, files: dict[str, tuple[bytes, bool]], links: list[int],
               empty_dirs: list[str]) -> dict[str, object]:
    """Write the tree; return what each entry should read back as."""
    root.mkdir()
    expected: dict[str, object] = {}
    (root / "image.json").write_text(json.dumps(MANIFEST))
    expected["image.json"] = (json.dumps(MANIFEST).encode(), False)
    for rel, (data, executable) in files.items():
        path = root / "files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if executable else 0o644)
        expected[f"files/{rel}"] = (data, executable)
    targets = sorted(files)
    for index, pick in enumerate(links):
        if targets:
            link = root / "links" / f"l{index}"
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(f"../files/{targets[pick % len(targets)]}")
            expected[f"links/l{index}"] = os.readlink(link)
    for name in empty_dirs:
        (root / "empty" / name).mkdir(parents=True, exist_ok=True)
        expected[f"empty/{name}"] = "dir"
    return expected


def read_back(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = os.readlink(path)
        elif path.is_file():
            found[rel] = (path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR))
        elif not any(path.iterdir()):
            found[rel] = "dir"
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=file_specs, links=st.lists(st.integers(min_value=0), max_size=3),
       empty_dirs=st.lists(names.map(lambda name: "d" + name), max_size=2),
       prefixed=st.booleans())
def test_a_tree_and_its_tarball_share_a_digest_and_read_back_unchanged(
        files: dict[str, tuple[bytes, bool]], links: list[int], empty_dirs: list[str],
        prefixed: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        expected = build_tree(work / "tree", files, links, empty_dirs)
        tarball = tar_of(work / "tree", work / "tree.tar.gz",
                         arcname="tree" if prefixed else ".")
        store = ArtifactStore(work / "store")

        from_tar = store.ingest(tarball)
        from_dir = store.ingest(work / "tree")

        assert from_tar.digest == from_dir.digest == digest_tree(work / "tree")
        assert read_back(from_tar.path) == expected
        assert store.list() == [from_tar]


def test_a_racing_ingest_of_the_same_content_keeps_one_copy(
        tmp_path: Path, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    image = make_image(tmp_path / "image")
    tarball = tar_of(image, tmp_path / "image.tar.gz")
    rename = os.rename

    def rival_wins_first(src: Path, dst: Path) -> None:
        # Another ingest finishes between our existence check and our rename.
        monkeypatch.setattr(os, "rename", rename)
        store.ingest(image)
        rename(src, dst)

    monkeypatch.setattr(os, "rename", rival_wins_first)
    artifact: Artifact = store.ingest(tarball)

    assert artifact.digest == digest_tree(image)
    assert store.list() == [artifact]
    assert list((store.root / ".tmp").iterdir()) == []
