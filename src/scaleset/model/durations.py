"""ISO 8601 durations (``PT5M``) as ``timedelta`` fields.

Parsing is isodate's; this module only adds the rule that a duration used as a
timer must have a fixed length (no years or months, whose length depends on
the calendar) and must not be negative.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import isodate
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema


def parse_duration(value: Any) -> timedelta:
    """Parse an ISO 8601 duration, a ``timedelta`` or a number of seconds.

    >>> parse_duration("PT5M")
    datetime.timedelta(seconds=300)
    >>> parse_duration(90)
    datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a duration must be an ISO 8601 string such as 'PT5M', not a boolean")
    elif isinstance(value, (int, float)):
        try:
            result = timedelta(seconds=value)
        except (OverflowError, ValueError) as exc:  # 10**20, nan, inf
            raise ValueError(f"{str(value)[:40]} seconds is not a duration timedelta can hold; "
                             "give a finite number of seconds or e.g. 'PT5M'") from exc
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError, OverflowError) as exc:
            raise ValueError(
                f"'{value}' is not an ISO 8601 duration; write it like 'PT0S', 'PT30S' or 'PT5M'"
            ) from exc
        if not isinstance(parsed, timedelta):
            raise ValueError(
                f"'{value}' uses years or months, whose length varies; use days, hours, "
                "minutes or seconds (e.g. 'P1D', 'PT2H')"
            )
        result = parsed
    else:
        raise ValueError(f"a duration must be an ISO 8601 string such as 'PT5M', not {value!r}")
    if result < timedelta(0):
        raise ValueError(f"a duration cannot be negative ({value!r})")
    return result


def format_duration(value: timedelta) -> str:
    """Format a ``timedelta`` as ISO 8601 (``PT5M``; zero is ``PT0S``)."""
    if value == timedelta(0):
        return "PT0S"
    return str(isodate.duration_isoformat(value))


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "duration", "example": "PT5M"}),
]
"""A ``timedelta`` that reads and writes ISO 8601 on the wire."""
