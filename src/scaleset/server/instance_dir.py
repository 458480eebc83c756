"""Where the process driver keeps instance trees, so the data directory can stay 0700.

Not root, instances run as the server's own user and nothing can be hidden from
them: their trees stay in ``<data-dir>/instances``. As root every instance runs
as a user of its own and must reach its disks by absolute path, which needs
search permission on every directory above them; giving that to the data
directory (or to ``/root`` above it) would open it. So the trees move to a
directory of their own, ``/var/lib/scaleset/instances/<digest>-<random>`` by
default, new for every new data directory (``--instance-dir`` chooses another), and
``<data-dir>/instances`` becomes a symbolic link to it: everything that looked
there finds them still. A data directory whose ``instances`` is a real
directory (an older layout with instances in it) keeps it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("scaleset.serve")

DEFAULT_ROOT = Path("/var/lib/scaleset/instances")
LINK = "instances"


def instance_dir(data_dir: Path, chosen: Path | None = None, *, root: bool | None = None
                 ) -> Path:
    """The directory the process driver keeps instances in (created), linked from the
    data directory when it lies elsewhere. ``root``: whether serve runs as root."""
    link = data_dir / LINK
    is_root = os.geteuid() == 0 if root is None else root
    if chosen is None and not is_root:
        return link
    if link.is_dir() and not link.is_symlink():
        if chosen is None:
            log.warning("instances stay in %s (an older layout): the data directory gets "
                        "search permission (o+x) so that their users reach them; move them "
                        "with the server stopped to keep it 0700", link)
            return link
        raise SystemExit(f"{link} is a directory of instances; --instance-dir {chosen} would "
                         "leave them behind: stop serve, move them there, and remove it")
    if chosen is None and link.is_symlink():
        return link.resolve()  # the place this data directory was given when it was new
    if chosen is None:
        # A new directory for every new data directory, never one derived from its path
        # alone: a data directory made again where an older one was must not adopt the
        # older one's instances.
        DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        real = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=DEFAULT_ROOT)).resolve()
    else:
        real = chosen.resolve()
        real.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if link.resolve() == real:
            return real
        link.unlink()  # the operator moved them (--instance-dir): follow
    link.symlink_to(real, target_is_directory=True)
    return real
