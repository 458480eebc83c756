"""How large an image version may be: compressed, expanded and in entries.

Checked while the source is read (``tarballs.unpack``, ``tree.scan``), so a
small archive that expands to gigabytes, or a tree of millions of files, is
refused before it fills the disk. Each refusal names the limit, the value
reached and the ``serve`` flag that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaleset.artifacts.errors import ArtifactError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """``archive_bytes``: an archive file as sent; ``expanded_bytes``: the bytes of every
    file in the tree together; ``files``: entries (files, directories, links)."""

    archive_bytes: int = 256 * MiB
    expanded_bytes: int = 512 * MiB
    files: int = 10_000


UNLIMITED = ArchiveLimits(archive_bytes=1 << 62, expanded_bytes=1 << 62, files=1 << 62)
"""For copies of what the store already accepted (replication)."""


def too_large(what: str, limit: int, reached: int, setting: str, *, entry: str) -> ArtifactError:
    """The refusal for ``what`` passing ``limit`` (``setting``: the Limits field's name)."""
    flag = "--" + setting.replace("_", "-")
    return ArtifactError(
        f"the image is refused: {what} passed the limit of {limit} ({setting}; {reached} "
        f"reached at '{entry}', reading stopped there, nothing was stored); make the image "
        f"smaller, or start serve with {flag} N to allow more", entry=entry)
