"""When an automatic OS upgrade becomes due: delays and jitter (pure).

Three settings of the server (``scaleset serve`` flags) pace Platform runs:

* ``first_rollout_delay`` — the first rollout of a scale set waits this long
  after automatic OS upgrade was turned on (``auto_os_upgrade_since``);
* ``rollout_delay`` — every rollout waits this long after its version became
  available to the scale set (``Candidate.available_at``: publish time for a
  platform image, replication into the scale set's region for a gallery one);
* ``rollout_jitter`` — plus a per-(scale set, version) jitter in
  ``[0, rollout_jitter]``, so a fleet of scale sets does not start at once.

The rules (worked examples in :func:`due_at`)::

    later rollout:  due = available_at + rollout_delay + jitter
    first rollout:  due = max(since + first_rollout_delay, the later-rollout due)

The first rollout is never earlier than a later one would be: a version
published three days after the scale set was configured waits its own
delay, not zero. The jitter is a hash, not a random draw, so the core stays
pure and a replay (or a restarted server) computes the same instant.

Presets: ``immediate`` (the default: 0 s each, publish -> run within a
second) and ``azure`` (the seed's timings: the first rollout up to 3 hours
after configuration, later ones 30-60 minutes after publish).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final


@dataclass(frozen=True, slots=True)
class RolloutTiming:
    """How long automatic runs wait (every field defaults to zero: start at once)."""

    first_rollout_delay: timedelta = timedelta(0)
    """After automatic OS upgrade is turned on, before the scale set's first Platform run."""
    rollout_delay: timedelta = timedelta(0)
    """After a version becomes available to the scale set, before its Platform run."""
    rollout_jitter: timedelta = timedelta(0)
    """Upper bound of the deterministic per-(scale set, version) extra wait."""

    def __post_init__(self) -> None:
        for name in ("first_rollout_delay", "rollout_delay", "rollout_jitter"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"{name} cannot be negative")


NO_DELAY: Final = RolloutTiming()
"""The default: automatic runs start as soon as their version is available."""
PRESETS: Final[dict[str, RolloutTiming]] = {
    "immediate": NO_DELAY,
    # The seed: "up to 3 hours ... to trigger the first image upgrade rollout after the
    # scale set is first configured"; "subsequent image rollouts ... within 30-60 minutes".
    "azure": RolloutTiming(first_rollout_delay=timedelta(hours=3),
                           rollout_delay=timedelta(minutes=30),
                           rollout_jitter=timedelta(minutes=30)),
}
DEFAULT_PRESET: Final = "immediate"


def jitter(scale_set_id: str, version: str, bound: timedelta) -> timedelta:
    """A stable pseudo-random wait in ``[0, bound]`` for this scale set and version.

    >>> jitter("vmss1", "1.1.0", timedelta(0))
    datetime.timedelta(0)
    >>> jitter("vmss1", "1.1.0", timedelta(minutes=30)) == jitter(
    ...     "vmss1", "1.1.0", timedelta(minutes=30))
    True
    """
    span = bound // timedelta(microseconds=1)
    if span <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{scale_set_id}\0{version}".encode()).digest()
    return timedelta(microseconds=int.from_bytes(digest[:8], "big") % (span + 1))


def due_at(*, timing: RolloutTiming, scale_set_id: str, version: str,
           available_at: datetime, first_rollout: bool,
           configured_at: datetime | None) -> datetime:
    """When a Platform run to ``version`` may start, windows aside.

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> azure = PRESETS["azure"]
    >>> no_jitter = RolloutTiming(timedelta(hours=3), timedelta(minutes=30))

    A first rollout right after configuration waits the first-rollout delay:

    >>> due_at(timing=no_jitter, scale_set_id="s", version="1.1.0", available_at=t0,
    ...        first_rollout=True, configured_at=t0) - t0
    datetime.timedelta(seconds=10800)

    one published much later waits its own rollout delay:

    >>> due_at(timing=no_jitter, scale_set_id="s", version="1.1.0",
    ...        available_at=t0 + timedelta(days=3), first_rollout=True,
    ...        configured_at=t0) - t0
    datetime.timedelta(days=3, seconds=1800)

    and a later rollout waits 30 to 60 minutes with the azure preset:

    >>> wait = due_at(timing=azure, scale_set_id="s", version="1.2.0", available_at=t0,
    ...               first_rollout=False, configured_at=t0) - t0
    >>> timedelta(minutes=30) <= wait <= timedelta(minutes=60)
    True
    """
    due = available_at + timing.rollout_delay + jitter(scale_set_id, version,
                                                       timing.rollout_jitter)
    if first_rollout and configured_at is not None:
        due = max(due, configured_at + timing.first_rollout_delay)
    return due
