"""When automatic OS upgrade runs start: delays, jitter, windows, deferral (the pure trigger)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, time, timedelta
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset.catalog.latest import Candidate
from scaleset.model import maintenance
from scaleset.upgrade import timing, trigger, windows
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.state import RunKind, RunStatus, StartedBy, Target
from scaleset.upgrade.timing import PRESETS, RolloutTiming
from scaleset.upgrade.trigger import Automatic, PastRun, WaitingFor

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)  # a Monday
SID = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/a"
FLEET = {str(i): InstanceObservation(str(i), image_version="1.0.0", generation=1)
         for i in range(4)}
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize("module", [timing, windows, trigger, maintenance],
                         ids=lambda m: m.__name__)
def test_the_worked_examples_in_the_docstrings_hold(module: ModuleType) -> None:
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0


def candidate(version: str = "1.1.0", at: datetime = T0) -> Candidate:
    return Candidate(version, published_at=at, available_at=at)


def decide(now: datetime, *, automatic: Automatic, rollout: RolloutTiming,
           latest: Candidate | None = None, past: list[PastRun] | None = None,
           active: bool = False, scale_set_id: str = SID) -> trigger.TriggerDecision:
    return trigger.decide(scale_set_id=scale_set_id, fleet=FLEET, generation=1,
                          upgrade_mode="Rolling", automatic=automatic,
                          latest=latest or candidate(), past_runs=past or [], active=active,
                          now=now, rollout=rollout)


def first_start(*, automatic: Automatic, rollout: RolloutTiming,
                latest: Candidate | None = None, past: list[PastRun] | None = None,
                scale_set_id: str = SID, start: datetime = T0) -> datetime:
    """Follow the trigger's wake-ups from ``start`` until it starts the run."""
    now = start
    for _ in range(50):
        d = decide(now, automatic=automatic, rollout=rollout, latest=latest, past=past,
                   scale_set_id=scale_set_id)
        if d.start is not None:
            assert d.start.kind is RunKind.OS_IMAGE
            return now
        assert d.wake_at is not None and d.wake_at > now, "it must say when to look again"
        now = d.wake_at
    raise AssertionError("the run never started")


# -- delays -----------------------------------------------------------------------------------
def test_the_first_rollout_waits_the_first_rollout_delay_after_configuration() -> None:
    rollout = RolloutTiming(first_rollout_delay=3 * HOUR)
    auto = Automatic(enabled=True, since=T0)
    waiting = decide(T0 + 10 * MINUTE, automatic=auto, rollout=rollout)
    assert waiting.start is None
    assert waiting.pending is not None
    assert waiting.pending.waiting_for is WaitingFor.FIRST_ROLLOUT_DELAY
    assert waiting.wake_at == T0 + 3 * HOUR
    assert decide(T0 + 3 * HOUR - timedelta(microseconds=1), automatic=auto,
                  rollout=rollout).start is None
    assert first_start(automatic=auto, rollout=rollout) == T0 + 3 * HOUR


def test_after_a_platform_run_later_rollouts_wait_only_the_rollout_delay() -> None:
    rollout = RolloutTiming(first_rollout_delay=3 * HOUR, rollout_delay=30 * MINUTE)
    auto = Automatic(enabled=True, since=T0)
    earlier = PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.0.5", RunStatus.COMPLETED,
                      1, T0 + 3 * HOUR)
    published = T0 + 4 * HOUR
    assert first_start(automatic=auto, rollout=rollout, latest=candidate("1.1.0", published),
                       past=[earlier], start=published) == published + 30 * MINUTE


def test_a_user_run_does_not_count_as_the_first_rollout() -> None:
    rollout = RolloutTiming(first_rollout_delay=3 * HOUR)
    auto = Automatic(enabled=True, since=T0)
    manual = PastRun(RunKind.OS_IMAGE, StartedBy.USER, "1.0.5", RunStatus.COMPLETED, 1,
                     T0 + MINUTE)
    assert first_start(automatic=auto, rollout=rollout, past=[manual]) == T0 + 3 * HOUR


def test_a_version_published_long_after_configuration_waits_its_own_delay() -> None:
    rollout = RolloutTiming(first_rollout_delay=3 * HOUR, rollout_delay=30 * MINUTE)
    auto = Automatic(enabled=True, since=T0)
    published = T0 + timedelta(days=2)
    d = decide(published, automatic=auto, rollout=rollout,
               latest=candidate("1.1.0", published))
    assert d.pending is not None and d.pending.waiting_for is WaitingFor.ROLLOUT_DELAY
    assert d.wake_at == published + 30 * MINUTE


@given(st.text(min_size=1, max_size=40), st.from_regex(r"\d{1,3}\.\d{1,3}\.\d{1,3}",
                                                        fullmatch=True),
       st.integers(min_value=0, max_value=7200))
def test_jitter_is_deterministic_and_within_its_bound(sid: str, version: str,
                                                      bound_seconds: int) -> None:
    bound = timedelta(seconds=bound_seconds)
    first = timing.jitter(sid, version, bound)
    assert first == timing.jitter(sid, version, bound)
    assert timedelta(0) <= first <= bound


def test_jitter_spreads_scale_sets_over_the_whole_range() -> None:
    bound = 30 * MINUTE
    waits = [timing.jitter(f"{SID}{i}", "1.1.0", bound) for i in range(200)]
    assert len(set(waits)) > 190  # not a constant
    assert min(waits) < 3 * MINUTE and max(waits) > 27 * MINUTE


@given(st.integers(min_value=0, max_value=10_000))
def test_a_later_rollout_starts_rollout_delay_plus_its_jitter_after_publish(n: int) -> None:
    rollout = PRESETS["azure"]
    sid = f"{SID}-{n}"
    auto = Automatic(enabled=True, since=T0 - timedelta(days=30))
    earlier = PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.0.0", RunStatus.COMPLETED, 1,
                      T0 - timedelta(days=20))
    started = first_start(automatic=auto, rollout=rollout, past=[earlier], scale_set_id=sid)
    assert started == T0 + 30 * MINUTE + timing.jitter(sid, "1.1.0", 30 * MINUTE)
    assert 30 * MINUTE <= started - T0 <= 60 * MINUTE


def test_the_azure_preset_reproduces_the_seeds_timings() -> None:
    azure = PRESETS["azure"]
    assert azure.first_rollout_delay == 3 * HOUR  # "up to 3 hours" after configuration
    assert azure.rollout_delay == 30 * MINUTE     # "within 30-60 minutes" after publish:
    assert azure.rollout_jitter == 30 * MINUTE    # 30 min delay + up to 30 min jitter
    assert PRESETS["immediate"] == RolloutTiming()
    # The first rollout of a scale set configured when the version appears: 3 hours.
    auto = Automatic(enabled=True, since=T0)
    assert first_start(automatic=auto, rollout=azure) - T0 <= 3 * HOUR


def test_with_no_delays_a_published_version_starts_at_once() -> None:
    d = decide(T0, automatic=Automatic(enabled=True, since=T0), rollout=RolloutTiming())
    assert d.start == trigger.StartRun(RunKind.OS_IMAGE, Target("1.1.0", 1))


# -- runs in progress, retries -------------------------------------------------------------
def test_a_version_published_during_a_run_waits_for_it_then_starts() -> None:
    rollout = RolloutTiming(rollout_delay=10 * MINUTE)
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1))
    busy = decide(T0 + HOUR, automatic=auto, rollout=rollout, active=True)
    assert busy.start is None and busy.wake_at is None
    assert busy.pending is not None and busy.pending.waiting_for is WaitingFor.RUN_IN_PROGRESS
    # The run ends an hour after publish: the delay (counted from publish) has passed.
    assert decide(T0 + HOUR, automatic=auto, rollout=rollout).start is not None


def test_a_given_up_version_is_not_pending() -> None:
    faulted = PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.1.0", RunStatus.FAULTED, 1, T0)
    d = decide(T0 + HOUR, automatic=Automatic(enabled=True, since=T0),
               rollout=RolloutTiming(), past=[faulted])
    assert d == trigger.TriggerDecision()


def test_without_automatic_upgrade_nothing_is_pending() -> None:
    assert decide(T0, automatic=Automatic(enabled=False), rollout=RolloutTiming()) \
        == trigger.TriggerDecision()


# -- deferral -----------------------------------------------------------------------------------
def test_a_deferred_run_waits_for_approval_without_waking() -> None:
    rollout = RolloutTiming(rollout_delay=30 * MINUTE)
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1), deferral=True)
    early = decide(T0, automatic=auto, rollout=rollout)
    assert early.start is None and early.wake_at == T0 + 30 * MINUTE
    assert trigger.approved(early.pending, 1) is None  # not due yet: nothing to approve
    due = decide(T0 + 30 * MINUTE, automatic=auto, rollout=rollout)
    assert due.start is None and due.wake_at is None
    assert due.pending is not None and due.pending.waiting_for is WaitingFor.APPROVAL
    assert trigger.approved(due.pending, 1) == trigger.StartRun(RunKind.OS_IMAGE,
                                                               Target("1.1.0", 1))
    later = decide(T0 + timedelta(days=3), automatic=auto, rollout=rollout)
    assert later.pending is not None and later.pending.waiting_for is WaitingFor.APPROVAL


def test_a_deferred_run_stays_pending_after_its_window_closes() -> None:
    window = windows.Window(frozenset({0}), time(13), HOUR)  # Mondays 13:00-14:00 UTC
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1), deferral=True,
                     windows=(window,))
    before = decide(T0, automatic=auto, rollout=RolloutTiming())
    assert before.pending is not None
    assert before.pending.waiting_for is WaitingFor.MAINTENANCE_WINDOW
    assert before.wake_at == T0 + HOUR
    after = decide(T0 + 5 * HOUR, automatic=auto, rollout=RolloutTiming())
    assert after.pending is not None and after.pending.waiting_for is WaitingFor.APPROVAL


# -- maintenance windows ----------------------------------------------------------------------
def test_a_due_run_waits_for_the_window_and_starts_inside_it() -> None:
    saturday_night = windows.Window(frozenset({5}), time(22), 4 * HOUR)
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1), windows=(saturday_night,))
    d = decide(T0, automatic=auto, rollout=RolloutTiming())
    assert d.start is None
    assert d.pending is not None and d.pending.waiting_for is WaitingFor.MAINTENANCE_WINDOW
    opens = datetime(2026, 1, 10, 22, tzinfo=UTC)
    assert d.wake_at == opens
    assert first_start(automatic=auto, rollout=RolloutTiming()) == opens


def test_a_window_missed_while_the_server_was_down_waits_for_the_next_one() -> None:
    saturday_night = windows.Window(frozenset({5}), time(22), 4 * HOUR)
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1), windows=(saturday_night,))
    monday_after = datetime(2026, 1, 12, 9, tzinfo=UTC)
    d = decide(monday_after, automatic=auto, rollout=RolloutTiming())
    assert d.start is None and d.wake_at == datetime(2026, 1, 17, 22, tzinfo=UTC)


def test_a_delay_ending_outside_a_window_waits_for_the_next_opening() -> None:
    weekday_mornings = windows.Window(frozenset(range(5)), time(6), 2 * HOUR)
    auto = Automatic(enabled=True, since=T0 - timedelta(days=1), windows=(weekday_mornings,))
    rollout = RolloutTiming(rollout_delay=30 * MINUTE)
    d = decide(T0, automatic=auto, rollout=rollout)
    assert d.pending is not None and d.pending.waiting_for is WaitingFor.ROLLOUT_DELAY
    tuesday_six = datetime(2026, 1, 6, 6, tzinfo=UTC)
    assert d.wake_at == tuesday_six  # it would be due at 12:30: the next window is Tuesday's
    assert first_start(automatic=auto, rollout=rollout) == tuesday_six
