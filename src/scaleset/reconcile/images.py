"""Where an image version's artifact is recorded in its published properties."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ARTIFACT = "artifact"


def artifact_digest(properties: Mapping[str, Any]) -> str | None:
    """The ``properties.artifact.digest`` of a published version, ``None`` if it has none."""
    artifact = properties.get(ARTIFACT)
    if isinstance(artifact, Mapping):
        digest = artifact.get("digest")
        return str(digest) if digest else None
    return None
