"""Image versions as immutable, content-addressed artifacts.

An image version is a directory or ``.tar.gz`` holding ``image.json`` and its
files. ``ArtifactStore.ingest`` checks it, computes its ``sha256:`` digest over a
canonical serialization of the tree and keeps it at ``<root>/sha256/<hex>/``;
drivers copy OS disks from there.

* ``manifest``: ``ImageManifest``, the parsed ``image.json``;
* ``tree``: what a tree may hold, and its digest;
* ``tarballs``: checking and unpacking archives;
* ``store``: ``ArtifactStore`` and ``Artifact``;
* ``errors``: ``ArtifactError`` (with ``.entry``) and ``ArtifactNotFound``.
"""

from scaleset.artifacts.errors import ArtifactError, ArtifactNotFound
from scaleset.artifacts.manifest import ImageManifest, load_manifest, parse_manifest
from scaleset.artifacts.store import Artifact, ArtifactStore
from scaleset.artifacts.tree import digest_tree

__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactStore",
    "ImageManifest",
    "digest_tree",
    "load_manifest",
    "parse_manifest",
]
