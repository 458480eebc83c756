"""What can go wrong with an image artifact.

::

    ScalesetError (scaleset.errors)
    └── InvalidParameter                 400
        └── ArtifactError                an image version's tree or manifest is refused;
            │                            ``.entry`` names the offending entry
            └── ArtifactNotFound         404  no artifact with that digest is stored

Every message names the entry, the rule it broke and how to fix it, because the
person reading it is the one who built the image.
"""

from __future__ import annotations

from scaleset.errors import InvalidParameter, NotFound


class ArtifactError(InvalidParameter):
    """An image version was refused.

    ``entry`` is the offending entry: a tar member name as written in the archive,
    a path relative to a directory source, ``image.json`` for manifest problems, or
    the source path itself when the source as a whole is unusable.
    """

    def __init__(self, message: str, *, entry: str | None = None, target: str | None = None):
        super().__init__(message, target=target)
        self.entry = entry


class ArtifactNotFound(ArtifactError):
    """No artifact with this digest is in the store."""

    code = NotFound.code
    status = NotFound.status

    def __init__(self, digest: str):
        super().__init__(
            f"no image artifact {digest!r} is stored (digests read sha256:<64 hex digits>); "
            "ingest the image version first", entry=digest
        )
        self.digest = digest
