"""Time, injected: the real clock and a virtual one for simulation and tests.

The shell reads the clock once per pass and hands that instant to the pure
core; nothing else reads time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that moves only when told to: the heart of the discrete-event loop.

    >>> clock = VirtualClock()
    >>> clock.advance(timedelta(minutes=5)) - EPOCH
    datetime.timedelta(seconds=300)
    """

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance_to(self, instant: datetime) -> datetime:
        """Move to ``instant``; time never runs backwards."""
        self._now = max(self._now, instant)
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        return self.advance_to(self._now + delta)

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"
