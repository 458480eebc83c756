"""Which image version is "latest" for a scale set (pure).

A version is a candidate for ``latest`` in a location when it is available
there (a platform version is published per location; a gallery version once
its replication to that region has completed), is not excluded from latest,
and has not reached its end-of-life date. Among candidates the highest
version wins, compared as dotted integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from scaleset.catalog import versions


@dataclass(frozen=True, slots=True)
class Candidate:
    """One image version as seen from one location."""

    version: str
    published_at: datetime
    available_at: datetime | None
    """When it became usable in the location; None: not (yet) available there."""
    excluded_from_latest: bool = False
    end_of_life: datetime | None = None
    digest: str | None = None
    """The artifact instances boot from (None: no files, e.g. the simulated driver)."""
    os_type: str = "Linux"

    def eligible(self, now: datetime) -> bool:
        """Whether this version may be ``latest`` at ``now``."""
        return (self.available_at is not None and not self.excluded_from_latest
                and (self.end_of_life is None or now < self.end_of_life))


def choose(candidates: Iterable[Candidate], now: datetime) -> Candidate | None:
    """The highest eligible version, or None.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> choose([Candidate("1.9.0", t, t), Candidate("1.10.0", t, t)], t).version
    '1.10.0'
    >>> choose([Candidate("1.9.0", t, t), Candidate("1.10.0", t, None)], t).version
    '1.9.0'
    """
    best: Candidate | None = None
    for c in candidates:
        if not c.eligible(now):
            continue
        if best is None or versions.version_key(c.version) > versions.version_key(best.version):
            best = c
    return best
