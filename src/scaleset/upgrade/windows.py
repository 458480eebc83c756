"""Maintenance windows in time: is an instant inside one, and when does the next open (pure).

A window opens on each listed day at its local wall-clock start time in its
time zone, and stays open for its duration of *elapsed* time (so a four-hour
window is four real hours even on the night the clocks change). Intervals
are half-open: open at the start instant, closed at start + duration.
Several windows are their union.

Daylight-saving transitions follow :pep:`495` with ``fold=0``:

* a start time that does not exist that day (spring forward, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March) is read with the offset in force
  before the change, so the window opens one hour later on the wall clock
  (03:30 CEST, the same instant as "02:30 CET");
* a start time that occurs twice (fall back) opens at its first occurrence.

Only ``zoneinfo`` is consulted (it reads the zone database once per zone and
caches it); nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from scaleset.model.maintenance import DAYS, MaintenanceWindow

_DAY = timedelta(days=1)
# Local dates to look at on either side of an instant: the longest window is 24 hours,
# and a zone's offset is within ±26 hours of UTC, so two days back cover every window
# still open; eight days ahead cover the next opening of any weekly window.
_BACK_DAYS = 2
_AHEAD_DAYS = 8


@dataclass(frozen=True, slots=True)
class Window:
    """One weekly window (days as ``date.weekday()`` numbers, Monday 0)."""

    days: frozenset[int]
    start: time
    duration: timedelta
    zone: str = "UTC"

    @classmethod
    def from_model(cls, model: MaintenanceWindow) -> Window:
        """The core's form of a window as written on the scale set."""
        hour, minute = model.start_hour_minute
        return cls(days=frozenset(DAYS.index(d) for d in model.days_of_week),
                   start=time(hour, minute), duration=model.duration, zone=model.time_zone)

    def opening(self, day: date) -> datetime:
        """The UTC instant this window opens on local date ``day`` (listed or not)."""
        local = datetime.combine(day, self.start, tzinfo=_zone(self.zone))  # fold=0, PEP 495
        return local.astimezone(UTC)

    def openings(self, around: datetime) -> Iterable[datetime]:
        """Every opening from two local days before ``around`` to eight after, in order."""
        today = around.astimezone(_zone(self.zone)).date()
        for offset in range(-_BACK_DAYS, _AHEAD_DAYS + 1):
            day = today + offset * _DAY
            if day.weekday() in self.days:
                yield self.opening(day)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def from_models(models: Iterable[MaintenanceWindow] | None) -> tuple[Window, ...]:
    """The core's form of a scale set's ``maintenanceWindows`` (empty: none configured)."""
    return tuple(Window.from_model(m) for m in models or ())


def inside(windows: Sequence[Window], at: datetime) -> bool:
    """Whether ``at`` falls inside any of ``windows`` (False when there are none).

    >>> sat = Window(days=frozenset({5}), start=time(22), duration=timedelta(hours=4))
    >>> inside([sat], datetime(2026, 1, 3, 23, tzinfo=UTC))   # Saturday 23:00
    True
    >>> inside([sat], datetime(2026, 1, 4, 1, 59, tzinfo=UTC))  # crossed midnight
    True
    >>> inside([sat], datetime(2026, 1, 4, 2, tzinfo=UTC))      # closed at 02:00
    False
    """
    return any(start <= at < start + w.duration for w in windows for start in w.openings(at))


def next_opening(windows: Sequence[Window], at: datetime) -> datetime | None:
    """The first opening of any window at or after ``at`` (None when there are none).

    >>> sat = Window(days=frozenset({5}), start=time(22), duration=timedelta(hours=4))
    >>> next_opening([sat], datetime(2026, 1, 1, tzinfo=UTC))  # a Thursday
    datetime.datetime(2026, 1, 3, 22, 0, tzinfo=datetime.timezone.utc)
    """
    found = [start for w in windows for start in w.openings(at) if start >= at]
    return min(found) if found else None


def earliest_start(windows: Sequence[Window], at: datetime) -> datetime:
    """The first instant at or after ``at`` when a run may start: ``at`` itself with no
    windows or inside one, else the next opening."""
    if not windows or inside(windows, at):
        return at
    opening = next_opening(windows, at)
    assert opening is not None, "a weekly window opens within eight days"
    return opening
