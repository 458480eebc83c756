"""Image version numbers: ``Major.Minor.Build`` compared as integers, not strings."""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


def is_version(text: str) -> bool:
    """Whether ``text`` is a dotted-integer version such as ``1.10.0``."""
    return bool(_VERSION.match(text))


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for a version.

    >>> version_key("1.10.0") > version_key("1.9.0")
    True
    >>> version_key("2016.127.20180613")
    (2016, 127, 20180613)
    """
    if not is_version(version):
        raise ValueError(
            f"'{version}' is not an image version; use dotted integers such as '1.2.0'"
        )
    return tuple(int(part) for part in version.split("."))


def latest(versions: Iterable[str]) -> str | None:
    """The highest version, or ``None`` when there is none.

    >>> latest(["1.9.0", "1.10.0", "1.2.3"])
    '1.10.0'
    """
    best: str | None = None
    for v in versions:
        if best is None or version_key(v) > version_key(best):
            best = v
    return best


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether ``candidate`` is strictly newer than ``current`` (anything beats nothing)."""
    if candidate is None:
        return False
    if current is None or not is_version(current):
        return True
    return version_key(candidate) > version_key(current)
