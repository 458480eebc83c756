"""Image versions as immutable, content-addressed artifacts.

An image version is a directory or ``.tar.gz`` holding ``image.json`` and its
files. ``ArtifactStore.ingest`` checks it, computes its ``sha256:`` digest over a
canonical serialization of the tree and keeps it at ``<root>/sha256/<hex>/``;
drivers copy OS disks from there.

* ``manifest``: ``ImageManifest``, the parsed ``image.json``;
* ``tree``: what a tree may hold, and its digest;
* ``tarballs``: checking and unpacking archives;
* ``store``: ``ArtifactStore`` and ``Artifact``;
* ``errors``: ``ArtifactError`` (with ``.entry``) and ``ArtifactNotFound``;
* ``limits``: ``ArchiveLimits``, how large a source may be (checked while reading);
* ``sources``: ``SourceRules``, which server paths and URLs may be read;
* ``addresses``: the pure rule of which network addresses a fetch may reach;
* ``fetch``: fetching a ``source.uri`` or ``fileUris`` entry under those rules.
"""

from scaleset.artifacts.errors import ArtifactError, ArtifactNotFound
from scaleset.artifacts.limits import ArchiveLimits
from scaleset.artifacts.manifest import ImageManifest, load_manifest, parse_manifest
from scaleset.artifacts.store import Artifact, ArtifactStore
from scaleset.artifacts.sources import SourceRules
from scaleset.artifacts.tree import digest_tree

__all__ = [
    "ArchiveLimits",
    "Artifact",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactStore",
    "ImageManifest",
    "SourceRules",
    "digest_tree",
    "load_manifest",
    "parse_manifest",
]
