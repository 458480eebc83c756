"""Fetching an image version from a URI (``properties.source.uri``) before it is ingested.

``file://`` paths and ``http(s)://`` URLs are accepted; what arrives is written
to a temporary file next to the store and handed to ``ArtifactStore.ingest``,
which checks it like any other source. Downloads are bounded in size and time.
"""

from __future__ import annotations

import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from scaleset.artifacts.errors import ArtifactError

MAX_BYTES = 4 << 30  # an image larger than this is almost certainly a mistake
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@contextmanager
def fetched(uri: str, scratch: Path) -> Iterator[Path]:
    """The image at ``uri`` as a local path, for the duration of the ``with`` block."""
    parts = urllib.parse.urlsplit(uri)
    shown = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if parts.scheme == "file":
        yield Path(urllib.parse.unquote(parts.path))
        return
    if parts.scheme not in ("http", "https"):
        raise ArtifactError(f"source.uri scheme '{parts.scheme}' is not supported ('{shown}'); "
                            "use file://, http:// or https://", entry=shown)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="download-", suffix=".tar.gz") as f:
        try:
            with httpx.stream("GET", uri, timeout=TIMEOUT, follow_redirects=True,
                              trust_env=False) as response:
                if response.status_code != 200:
                    raise ArtifactError(f"downloading '{shown}' answered HTTP "
                                        f"{response.status_code}", entry=shown)
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise ArtifactError(f"'{shown}' is larger than {MAX_BYTES >> 30} GiB",
                                            entry=shown)
                    f.write(chunk)
        except httpx.HTTPError as exc:
            raise ArtifactError(f"downloading '{shown}' failed: {exc}", entry=shown) from exc
        f.flush()
        yield Path(f.name)
