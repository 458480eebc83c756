"""Walking an image tree: what it may contain and its content digest.

The rules for what a tree may hold live here and only here:

* regular files, directories and symlinks, nothing else (no devices, FIFOs,
  sockets), because an OS disk is copied and read, never opened as a device;
* a symlink must resolve inside the tree: the driver copies the tree to make an
  OS disk, and a link that leaves it would expose the host's files.

The digest is ``sha256:<hex>`` over a canonical serialization of the tree, so
the same tree gets the same digest whether it arrived as a directory or as a
tarball, whatever the timestamps, owners or archive order::

    b"scaleset-image-tree-v1\\n"
    for each entry, sorted by its relative POSIX path (as bytes):
        kind          b"d" | b"f" | b"l"
        path          netstring: b"<len>:" + path + b","
        file:         b"x" (owner-executable) or b"-", then netstring of the bytes
        symlink:      netstring of the link target

Only the executable bit is recorded for files: other mode bits, owners and times
differ between a checkout and an archive of it without changing the image.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scaleset.artifacts.errors import ArtifactError
from scaleset.artifacts.limits import UNLIMITED, ArchiveLimits, too_large

DIGEST_PREFIX = "sha256:"
_HEADER = b"scaleset-image-tree-v1\n"
_CHUNK = 1 << 20

EntryKind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class TreeEntry:
    """One entry of an image tree: its relative POSIX path and what it is."""

    path: str
    kind: EntryKind
    executable: bool = False
    target: str | None = None


def scan(root: Path, limits: ArchiveLimits = UNLIMITED) -> list[TreeEntry]:
    """Every entry under ``root``, sorted canonically; refuse what a tree may not hold.

    Raises ``ArtifactError`` naming the entry (its path relative to ``root``) for
    a device, FIFO or socket, and for a symlink that resolves outside ``root``;
    and, as soon as the walk passes one, for the ``files`` or ``expanded_bytes``
    limit of ``limits``.
    """
    base = os.path.realpath(root)
    entries: list[TreeEntry] = []
    expanded = 0
    for rel in _walk(root, ""):
        entry = _entry(root, rel, base)
        entries.append(entry)
        if len(entries) > limits.files:
            raise too_large("the number of entries", limits.files, len(entries),
                            "max_image_files", entry=rel)
        if entry.kind == "file":
            expanded += (root / rel).lstat().st_size
            if expanded > limits.expanded_bytes:
                raise too_large("the size in bytes", limits.expanded_bytes, expanded,
                                "max_image_expanded_bytes", entry=rel)
    entries.sort(key=lambda entry: os.fsencode(entry.path))
    return entries


def digest_tree(root: Path) -> str:
    """The content digest of the tree at ``root``, after checking it as ``scan`` does."""
    return digest(root, scan(root))


def digest(root: Path, entries: list[TreeEntry]) -> str:
    """The content digest (``sha256:<hex>``) of the tree ``scan(root)`` described."""
    sha = hashlib.sha256(_HEADER)
    for entry in entries:
        sha.update({"dir": b"d", "file": b"f", "symlink": b"l"}[entry.kind])
        sha.update(_netstring(os.fsencode(entry.path)))
        if entry.kind == "file":
            sha.update(b"x" if entry.executable else b"-")
            path = root / entry.path
            sha.update(b"%d:" % path.stat().st_size)
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    sha.update(chunk)
            sha.update(b",")
        elif entry.kind == "symlink":
            assert entry.target is not None
            sha.update(_netstring(os.fsencode(entry.target)))
    return DIGEST_PREFIX + sha.hexdigest()


def _walk(root: Path, prefix: str) -> Iterator[str]:
    # os.walk would follow or hide symlinked directories; scandir lets each
    # entry be classified by lstat, and symlinks are never descended into.
    with os.scandir(root / prefix if prefix else root) as it:
        children = sorted(it, key=lambda child: child.name)
    for child in children:
        rel = f"{prefix}/{child.name}" if prefix else child.name
        yield rel
        if child.is_dir(follow_symlinks=False):
            yield from _walk(root, rel)


def _entry(root: Path, rel: str, base: str) -> TreeEntry:
    path = root / rel
    mode = path.lstat().st_mode
    if stat.S_ISDIR(mode):
        return TreeEntry(rel, "dir")
    if stat.S_ISREG(mode):
        return TreeEntry(rel, "file", executable=bool(mode & stat.S_IXUSR))
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        if os.path.isabs(target):
            raise ArtifactError(
                f'symlink "{rel}" points to the absolute path "{target}", outside the image; '
                "make it a relative link to a file inside the image, or copy the file in",
                entry=rel)
        # realpath follows every link on the way, so a chain of individually
        # harmless links that together climb out of the tree is caught too.
        resolved = os.path.realpath(path)
        if os.path.commonpath([resolved, base]) != base:
            raise ArtifactError(
                f'symlink "{rel}" -> "{target}" resolves outside the image; '
                "make it point to a file inside the image, or copy the file in", entry=rel)
        return TreeEntry(rel, "symlink", target=target)
    raise ArtifactError(
        f'"{rel}" is a {_special_kind(mode)}; an image may hold only files, directories '
        "and symlinks: remove it from the image", entry=rel)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)
