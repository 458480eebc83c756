"""Where the server may read image sources and extension files from.

``properties.source.path`` (and ``file://`` URIs) name paths on the server's own
machine; without a rule, anyone allowed to publish could read ``/etc`` or the
server's data directory (which holds the database). So a path is read only when,
with ``..`` and every symlink resolved, it lies under one of the operator's
roots (``serve --image-source-root DIR``) and neither lies inside nor contains
a protected directory (the data directory), whatever the roots say. Symlinks
*inside* a source directory are checked by ``tree.scan``: each must resolve
inside the tree.

A refusal never says whether the path exists, so it cannot be used to map the
server's files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scaleset.artifacts.errors import ArtifactError

MiB = 1024 * 1024
ROOT_FLAG = "--image-source-root"
PRIVATE_FLAG = "--allow-private-sources"


@dataclass(frozen=True, slots=True)
class SourceRules:
    """What a server-side read or fetch may reach.

    ``roots``: directories paths may lie under (none: no path may be read);
    ``protected``: directories never read, even under a root (the data directory);
    ``allow_private``: URLs may reach loopback, link-local and private addresses;
    ``max_bytes``: a fetched file larger than this is refused while it arrives.
    """

    roots: tuple[Path, ...] = ()
    protected: tuple[Path, ...] = ()
    allow_private: bool = False
    max_bytes: int = 256 * MiB

    def check_path(self, path: Path, *, what: str) -> Path:
        """``path`` resolved, if the server may read it; else ``ArtifactError`` naming ``what``.

        ``what`` is the field the path came from (e.g. ``properties.source.path``).
        """
        resolved = Path(os.path.realpath(path))
        for guarded in self.protected:
            inside = Path(os.path.realpath(guarded))
            if _within(resolved, inside) or _within(inside, resolved):
                raise ArtifactError(
                    f"{what} '{path}' is refused: it is or contains this server's data "
                    "directory, which is never read as a source; put the image in a "
                    f"directory of its own under one of the allowed roots ({self._roots()})",
                    entry=str(path), target=what)
        if not any(_within(resolved, Path(os.path.realpath(root))) for root in self.roots):
            raise ArtifactError(
                f"{what} '{path}' is refused: the server reads image sources only under "
                f"the directories its operator allowed ({self._roots()}); put the image "
                f"under one of them, or start serve with {ROOT_FLAG} DIR naming a "
                "directory that holds it", entry=str(path), target=what)
        return resolved

    def _roots(self) -> str:
        if not self.roots:
            return f"none: serve was started without {ROOT_FLAG}"
        return ", ".join(str(root) for root in self.roots)


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents
