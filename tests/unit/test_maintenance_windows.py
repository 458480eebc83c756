"""Maintenance windows in time: inside / next opening, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from scaleset.model.maintenance import MaintenanceWindow
from scaleset.upgrade import windows
from scaleset.upgrade.windows import Window

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns", "Europe/Dublin"]
# DST changes of 2026 (UTC): Europe, North America, southern hemisphere.
TRANSITIONS = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
               datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC),
               datetime(2026, 4, 5, 3, tzinfo=UTC), datetime(2026, 9, 6, 4, tzinfo=UTC)]
TINY = timedelta(microseconds=1)

window_strategy = st.builds(
    Window,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59])),
    duration=st.integers(60, 24 * 60).map(lambda m: timedelta(minutes=m)),
    zone=st.sampled_from(ZONES),
)
# Instants anywhere in 2025-2027, and instants within three days of a DST change.
instants = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.builds(lambda t, s: t + timedelta(seconds=s), st.sampled_from(TRANSITIONS),
              st.integers(-3 * 86400, 3 * 86400)),
)


@given(st.lists(window_strategy, min_size=1, max_size=3), instants)
def test_the_next_opening_is_inside_and_nothing_before_it_is(ws: list[Window],
                                                              at: datetime) -> None:
    opening = windows.next_opening(ws, at)
    assert opening is not None
    assert opening >= at
    assert windows.inside(ws, opening)
    assert opening - at <= timedelta(days=7, hours=1)
    if not windows.inside(ws, at):
        gap = opening - at
        for fraction in (0, 0.25, 0.5, 0.75, 0.999):
            assert not windows.inside(ws, at + gap * fraction)
        assert opening == at or not windows.inside(ws, opening - TINY)
        assert windows.earliest_start(ws, at) == opening
    else:
        assert windows.earliest_start(ws, at) == at


@given(window_strategy.filter(lambda w: len(w.days) == 1), instants)
def test_a_window_stays_open_for_its_duration_of_elapsed_time(w: Window,
                                                              at: datetime) -> None:
    opening = windows.next_opening([w], at)
    assert opening is not None
    assert windows.inside([w], opening)
    assert windows.inside([w], opening + w.duration - TINY)
    assert not windows.inside([w], opening + w.duration)  # one day a week: no overlap


@given(window_strategy, instants)
def test_a_window_opens_on_a_listed_day_at_its_local_start_time(w: Window,
                                                                at: datetime) -> None:
    zone = ZoneInfo(w.zone)
    for opening in w.openings(at):
        local = opening.astimezone(zone)
        wanted = datetime.combine(local.date(), w.start)
        if local.replace(tzinfo=None) != wanted:
            # Only when the start time does not exist that day (spring forward): it opens
            # later on the wall clock, by the size of the gap, on the same day.
            naive = datetime.combine(local.date(), w.start, tzinfo=zone)
            assert naive.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wanted
            assert timedelta(0) < local.replace(tzinfo=None) - wanted <= timedelta(hours=1)
        assert local.weekday() in w.days


def test_without_windows_any_time_will_do() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert not windows.inside([], at)
    assert windows.next_opening([], at) is None
    assert windows.earliest_start([], at) == at


def sunday(day: date, start: time, zone: str, hours: int = 1) -> Window:
    assert day.weekday() == 6
    return Window(frozenset({6}), start, timedelta(hours=hours), zone)


@pytest.mark.parametrize(("window", "opens_utc"), [
    # Europe/Berlin springs forward at 02:00 CET on 2026-03-29: 02:30 does not exist, so
    # the window opens at "02:30 CET" = 01:30 UTC = 03:30 CEST.
    (sunday(date(2026, 3, 29), time(2, 30), "Europe/Berlin"),
     datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    # Europe/Berlin falls back at 03:00 CEST on 2026-10-25: 02:30 happens twice; the
    # window opens at the first, 02:30 CEST = 00:30 UTC.
    (sunday(date(2026, 10, 25), time(2, 30), "Europe/Berlin"),
     datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    # New York: 2026-03-08 02:30 does not exist (EST->EDT): 02:30 EST = 07:30 UTC.
    (sunday(date(2026, 3, 8), time(2, 30), "America/New_York"),
     datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    # New York: 2026-11-01 01:30 happens twice: the first is EDT, 05:30 UTC.
    (sunday(date(2026, 11, 1), time(1, 30), "America/New_York"),
     datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
])
def test_start_times_across_daylight_saving_changes(window: Window,
                                                    opens_utc: datetime) -> None:
    the_day_before = opens_utc - timedelta(hours=20)
    assert windows.next_opening([window], the_day_before) == opens_utc
    assert not windows.inside([window], opens_utc - TINY)
    assert windows.inside([window], opens_utc)


def test_a_window_over_the_spring_change_lasts_its_real_duration() -> None:
    # Sunday 00:00 CET for four hours: the wall clock shows 00:00 -> 05:00 CEST.
    w = sunday(date(2026, 3, 29), time(0), "Europe/Berlin", hours=4)
    opens = datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert windows.next_opening([w], opens - timedelta(days=1)) == opens
    assert windows.inside([w], opens + timedelta(hours=4) - TINY)
    assert not windows.inside([w], opens + timedelta(hours=4))


def test_a_window_may_cross_midnight() -> None:
    w = Window(frozenset({5}), time(22), timedelta(hours=4), "America/New_York")  # Sat 22:00
    sunday_1am_local = datetime(2026, 1, 11, 6, tzinfo=UTC)  # 01:00 EST on Sunday
    assert windows.inside([w], sunday_1am_local)
    assert not windows.inside([w], datetime(2026, 1, 11, 7, tzinfo=UTC))  # 02:00 EST


def test_windows_on_consecutive_days_join_up() -> None:
    weekend = Window(frozenset({5, 6}), time(0), timedelta(hours=24))
    saturday = datetime(2026, 1, 10, tzinfo=UTC)
    assert all(windows.inside([weekend], saturday + timedelta(hours=h)) for h in range(48))
    assert not windows.inside([weekend], saturday + timedelta(hours=48))


def test_a_window_from_the_model() -> None:
    model = MaintenanceWindow.model_validate({
        "daysOfWeek": ["saturday", "SUNDAY"], "startTime": "02:00", "duration": "PT4H",
        "timeZone": "europe/berlin"})
    assert model.to_wire() == {"daysOfWeek": ["Saturday", "Sunday"], "startTime": "02:00",
                               "duration": "PT4H", "timeZone": "Europe/Berlin"}
    assert Window.from_model(model) == Window(frozenset({5, 6}), time(2), timedelta(hours=4),
                                              "Europe/Berlin")
    assert MaintenanceWindow.model_validate({"daysOfWeek": ["Monday"], "startTime": "23:59",
                                             "duration": "PT1H"}).time_zone == "UTC"


@pytest.mark.parametrize(("field", "value", "says"), [
    ("daysOfWeek", ["Sat"], "not a day of the week"),
    ("daysOfWeek", [], "at least one day"),
    ("daysOfWeek", ["Monday", "monday"], "listed twice"),
    ("startTime", "2:00", "HH:MM"),
    ("startTime", "24:00", "HH:MM"),
    ("duration", "PT59M", "at least PT1H"),
    ("duration", "PT25H", "at most PT24H"),
    ("duration", "P1M", "years or months"),
    ("timeZone", "Mars/Olympus_Mons", "not an IANA time zone"),
    ("timeZone", "../../etc/passwd", "not an IANA time zone"),
])
def test_a_bad_window_is_refused_naming_the_field_and_the_fix(field: str, value: object,
                                                              says: str) -> None:
    body: dict[str, object] = {"daysOfWeek": ["Saturday"], "startTime": "02:00",
                               "duration": "PT4H", "timeZone": "UTC", field: value}
    with pytest.raises(ValidationError) as caught:
        MaintenanceWindow.model_validate(body)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert says in errors[0]["msg"]
