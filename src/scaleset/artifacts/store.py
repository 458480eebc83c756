"""The artifact store: image versions kept by content digest.

Layout under the root (the server uses ``<data-dir>/images``)::

    <root>/sha256/<hex>/     one immutable image tree per digest (image.json at its top)
    <root>/.tmp/             ingests in progress, each in its own temporary directory

An ingest copies or unpacks the source into ``.tmp``, checks the tree and its
manifest, computes the digest and only then renames the tree into place, so a
reader never sees a partial artifact and a refused ingest leaves nothing behind.
Two ingests of the same content race harmlessly: the second finds the
destination taken and drops its copy. Stored trees are never modified.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scaleset.artifacts import tarballs, tree
from scaleset.artifacts.errors import ArtifactError, ArtifactNotFound
from scaleset.artifacts.limits import UNLIMITED, ArchiveLimits
from scaleset.artifacts.manifest import ImageManifest, load_manifest

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")

Progress = Callable[[int, int], None]
"""``(bytes copied, bytes in all)`` while a directory source is copied."""


@dataclass(frozen=True)
class Artifact:
    """A stored image version: its digest, its manifest and where its tree lives."""

    digest: str
    manifest: ImageManifest
    path: Path


class ArtifactStore:
    """Content-addressed image versions under ``root``."""

    def __init__(self, root: Path, *, data_dir: Path | None = None) -> None:
        self.root = Path(root)
        # The server's data directory (the store itself by default): the API never
        # reads a source inside it or containing it (``SourceRules.protected``).
        self.data_dir = Path(data_dir) if data_dir is not None else self.root
        self._trees = self.root / "sha256"
        self._tmp = self.root / ".tmp"
        # Made up front so that an ingest, accepted or refused, adds nothing
        # to the root but the artifact itself.
        self._trees.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)

    def ingest(self, source: Path, *,
               accept: Callable[[str, ImageManifest], None] | None = None,
               progress: Progress | None = None,
               limits: ArchiveLimits = UNLIMITED) -> Artifact:
        """Store the image version at ``source``: a directory or a ``.tar.gz``/``.tgz`` file.

        Returns the stored artifact; the same content ingested again returns the
        existing one. Raises ``ArtifactError`` (naming the offending entry in its
        message and ``.entry``) when the source is refused; nothing is stored then.
        ``accept``, when given, is called with the digest and the manifest before
        anything is stored; whatever it raises refuses the ingest the same way.
        ``progress(copied, total)`` (bytes), when given, is called as a directory
        source is copied; whatever it raises stops the ingest, storing nothing.
        ``limits`` bound the source as it is read (``ArchiveLimits``); sources from
        outside the store pass the server's, copies of stored artifacts need none.
        """
        source = Path(source)
        if source.is_dir():
            # Known content is not copied again; the digest of the copy below
            # stays the authority for anything new.
            known = tree.digest(source, tree.scan(source, limits))
            if known in self:
                found = self.get(known)
                if accept is not None:
                    accept(known, found.manifest)
                return found
        elif not source.is_file():
            raise ArtifactError(
                f"{source} does not exist or is neither a directory nor a file; pass an image "
                "directory or a .tar.gz/.tgz of one", entry=str(source))
        work = Path(tempfile.mkdtemp(prefix="ingest-", dir=self._tmp))
        try:
            staged = work / "tree"
            if source.is_dir():
                _copy_directory(source, staged, progress, limits)
            else:
                staged.mkdir()
                tarballs.unpack(source, staged, limits)
            manifest = load_manifest(staged)
            digest = tree.digest_tree(staged)
            if accept is not None:
                accept(digest, manifest)
            destination = self._location(digest)
            if not destination.exists():
                try:
                    os.rename(staged, destination)
                except OSError:
                    # Another ingest of the same content won the rename; its
                    # tree is identical, so ours is simply dropped below.
                    if not destination.is_dir():
                        raise
            return self.get(digest)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def get(self, digest: str) -> Artifact:
        """The stored artifact with this digest; raises ``ArtifactNotFound`` if there is none."""
        path = self.path(digest)
        return Artifact(digest=digest, manifest=load_manifest(path), path=path)

    def path(self, digest: str) -> Path:
        """Where the tree of the artifact ``digest`` lives; raises ``ArtifactNotFound``."""
        path = self._location(digest)
        if not path.is_dir():
            raise ArtifactNotFound(digest)
        return path

    def __contains__(self, digest: object) -> bool:
        """Whether an artifact with this digest (a ``sha256:<hex>`` string) is stored."""
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            return False
        return self._location(digest).is_dir()

    def list(self) -> builtins.list[Artifact]:
        """Every stored artifact, ordered by digest."""
        return [self.get(f"sha256:{child.name}") for child in sorted(self._trees.iterdir())
                if _DIGEST.fullmatch(f"sha256:{child.name}") and child.is_dir()]

    def _location(self, digest: str) -> Path:
        match = _DIGEST.fullmatch(digest)
        if match is None:
            # Checked before the digest becomes a path, so it can never name
            # anything outside the store.
            raise ArtifactNotFound(digest)
        return self._trees / match.group(1)


def _copy_directory(source: Path, staged: Path, progress: Progress | None = None,
                    limits: ArchiveLimits = UNLIMITED) -> None:
    # Checked before copying: copytree would read a device forever and a link
    # out of the tree could pull host files in; the staged copy is checked again.
    tree.scan(source, limits)
    copy: Callable[[str, str], object] = shutil.copy2
    if progress is not None:
        report = progress
        total = sum(p.stat().st_size for p in source.rglob("*")
                    if p.is_file() and not p.is_symlink())
        copied = 0
        report(0, total)

        def copy_counting(src: str, dst: str) -> object:
            nonlocal copied
            result = shutil.copy2(src, dst)
            copied += os.path.getsize(dst)
            report(min(copied, total), total)
            return result
        copy = copy_counting
    try:
        shutil.copytree(source, staged, symlinks=True, copy_function=copy)
    except (OSError, shutil.Error) as exc:
        raise ArtifactError(f"could not copy {source}: {exc}", entry=str(source)) from exc
