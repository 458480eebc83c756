"""Maintenance windows: a weekly schedule that says when automatic OS upgrades may start.

A scaleset extension of ``automaticOSUpgradePolicy`` (Azure schedules this
with separate Maintenance Configuration resources)::

    "maintenanceWindows": [
      {"daysOfWeek": ["Saturday", "Sunday"], "startTime": "02:00",
       "duration": "PT4H", "timeZone": "Europe/Berlin"}
    ]

Rules checked here (a PUT or PATCH that breaks one is refused with 400 and
nothing is stored):

* ``daysOfWeek``: one to seven English day names, no repeats (any case in,
  capitalised out);
* ``startTime``: 24-hour local wall-clock time ``HH:MM``;
* ``duration``: ISO 8601, from ``PT1H`` (shorter windows are easy to miss
  entirely) to ``PT24H`` (a longer one would overlap the same window the
  next day: list more days instead); a window may cross midnight;
* ``timeZone``: an IANA zone name (``UTC``, ``Europe/Berlin``; any case in,
  canonical out), from the ``tzdata`` package when the system has no zone
  database; default ``UTC``;
* at most 20 windows.

When a window opens and closes across daylight-saving changes is decided in
:mod:`scaleset.upgrade.windows`.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from functools import lru_cache

from pydantic import field_validator

from scaleset.model.base import ArmModel
from scaleset.model.durations import Duration, format_duration

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
"""Day names in ``datetime.weekday()`` order (Monday is 0)."""
MIN_DURATION = timedelta(hours=1)
MAX_DURATION = timedelta(hours=24)
MAX_WINDOWS = 20
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Lower-cased IANA zone name -> its canonical spelling (read once)."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def canonical_zone(name: str) -> str:
    """The canonical spelling of an IANA zone name; ValueError naming the fix when unknown.

    >>> canonical_zone("europe/berlin")
    'Europe/Berlin'
    """
    found = _zones().get(name.strip().lower())
    if found is None:
        raise ValueError(f"'{name}' is not an IANA time zone name; use one such as 'UTC', "
                         "'Europe/Berlin' or 'America/New_York'")
    return found


class MaintenanceWindow(ArmModel):
    """One weekly window: on each of ``days_of_week``, from ``start_time`` for ``duration``."""

    days_of_week: list[str]
    start_time: str
    duration: Duration
    time_zone: str = "UTC"

    @field_validator("days_of_week")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        by_name = {d.lower(): d for d in DAYS}
        days = []
        for name in value:
            day = by_name.get(str(name).strip().lower())
            if day is None:
                raise ValueError(f"'{name}' is not a day of the week; use English names such "
                                 "as 'Saturday'")
            if day in days:
                raise ValueError(f"'{day}' is listed twice; list each day once")
            days.append(day)
        if not days:
            raise ValueError("list at least one day, e.g. [\"Saturday\", \"Sunday\"]")
        return days

    @field_validator("start_time")
    @classmethod
    def _start(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"'{value}' is not a time of day; write 24-hour HH:MM such as "
                             "'02:00' or '22:30'")
        return value.strip()

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: timedelta) -> timedelta:
        if value < MIN_DURATION:
            raise ValueError(f"a maintenance window lasts at least PT1H, not "
                             f"{format_duration(value)}: a shorter one is easily missed. "
                             "Make it longer.")
        if value > MAX_DURATION:
            raise ValueError(f"a maintenance window lasts at most PT24H, not "
                             f"{format_duration(value)}; for a longer one list more days "
                             "(windows on consecutive days join up)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return canonical_zone(value)

    @property
    def start_hour_minute(self) -> tuple[int, int]:
        hour, minute = self.start_time.split(":")
        return int(hour), int(minute)
