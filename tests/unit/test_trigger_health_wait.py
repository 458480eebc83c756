"""An automatic OS run waits for healthy instances instead of faulting (the pure trigger).

A version published right after a create or a scale-out finds instances still
booting. The Platform run must not start while the set is over
``maxUnhealthyInstancePercent``; it waits, starts once the gate clears, and
only after the health timeout records one failed attempt, retried after the
rollout delay. A run in progress to V never shows V as pending behind itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scaleset.catalog.latest import Candidate
from scaleset.model.instance import HealthState
from scaleset.upgrade import trigger
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.run import BEFORE_ROLLING_UPGRADE
from scaleset.upgrade.state import RunKind, RunStatus, StartedBy, Target
from scaleset.upgrade.timing import RolloutTiming
from scaleset.upgrade.trigger import Automatic, HealthGate, PastRun, WaitingFor

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
SID = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/a"
MINUTE = timedelta(minutes=1)
GATE = HealthGate(max_unhealthy_instance_percent=20, health_timeout=5 * MINUTE)
AUTO = Automatic(enabled=True, since=T0 - timedelta(days=1))


def fleet(total: int = 10, unhealthy: int = 0,
          health: HealthState = HealthState.UNKNOWN) -> dict[str, InstanceObservation]:
    return {str(i): InstanceObservation(str(i), image_version="1.0.0", generation=1,
                                        health=health if i < unhealthy else HealthState.HEALTHY)
            for i in range(total)}


def decide(now: datetime, instances: dict[str, InstanceObservation], *,
           past: list[PastRun] | None = None, rollout: RolloutTiming | None = None,
           active: bool = False, active_target: str | None = None,
           gate: HealthGate | None = GATE) -> trigger.TriggerDecision:
    return trigger.decide(scale_set_id=SID, fleet=instances, generation=1,
                          upgrade_mode="Rolling", automatic=AUTO,
                          latest=Candidate("1.1.0", published_at=T0, available_at=T0),
                          past_runs=past or [], active=active, now=now,
                          rollout=rollout or RolloutTiming(), active_target=active_target,
                          gate=gate)


def attempt(end: datetime) -> PastRun:
    return PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.1.0", RunStatus.FAULTED, 1,
                   start_time=end - 5 * MINUTE, end_time=end, error_code=BEFORE_ROLLING_UPGRADE)


def test_a_booting_fleet_holds_the_run_and_says_so() -> None:
    d = decide(T0, fleet(unhealthy=10))
    assert d.start is None and d.failed_attempt is None
    assert d.pending is not None
    assert d.pending.waiting_for is WaitingFor.HEALTHY_INSTANCES
    assert (d.pending.unhealthy, d.pending.total) == (10, 10)
    assert d.pending.waiting_since == T0
    assert d.pending.gives_up_at == T0 + 5 * MINUTE
    assert d.wake_at == T0 + 5 * MINUTE  # the shell looks again then (health changes wake it too)


def test_the_run_starts_the_moment_the_gate_clears() -> None:
    assert decide(T0 + MINUTE, fleet(unhealthy=3)).start is None  # 30 % > 20 %
    started = decide(T0 + 2 * MINUTE, fleet(unhealthy=2))           # exactly 20 %: allowed
    assert started.start == trigger.StartRun(RunKind.OS_IMAGE, Target("1.1.0", 1))


def test_over_the_gate_for_the_whole_health_timeout_is_one_failed_attempt() -> None:
    just_before = decide(T0 + 5 * MINUTE - timedelta(microseconds=1), fleet(unhealthy=10))
    assert just_before.failed_attempt is None
    d = decide(T0 + 5 * MINUTE, fleet(unhealthy=10))
    assert d.start is None
    assert d.failed_attempt == trigger.FailedAttempt(Target("1.1.0", 1), T0, 10, 10, 20)
    error = d.failed_attempt.error(T0 + 5 * MINUTE)
    assert error.code == BEFORE_ROLLING_UPGRADE
    assert "10 of 10 instances" in error.message and "waited 300 s" in error.message
    assert error.target == "rollingUpgradePolicy.maxUnhealthyInstancePercent"


def test_a_failed_attempt_is_retried_after_the_rollout_delay() -> None:
    rollout = RolloutTiming(rollout_delay=30 * MINUTE)
    failed_at = T0 + 35 * MINUTE  # due at T0+30min, waited 5 min
    past = [attempt(failed_at)]
    held = decide(failed_at + 10 * MINUTE, fleet(), past=past, rollout=rollout)
    assert held.start is None
    assert held.pending is not None and held.pending.waiting_for is WaitingFor.ROLLOUT_DELAY
    assert held.wake_at == failed_at + 30 * MINUTE
    retried = decide(failed_at + 30 * MINUTE, fleet(), past=past, rollout=rollout)
    assert retried.start == trigger.StartRun(RunKind.OS_IMAGE, Target("1.1.0", 1))


def test_the_retry_waits_afresh_from_the_failed_attempt() -> None:
    failed_at = T0 + 5 * MINUTE
    d = decide(failed_at + MINUTE, fleet(unhealthy=10), past=[attempt(failed_at)])
    assert d.pending is not None and d.pending.waiting_since == failed_at
    assert d.failed_attempt is None and d.wake_at == failed_at + 5 * MINUTE


def test_a_run_that_really_faulted_is_still_not_retried() -> None:
    rolled_back = PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.1.0", RunStatus.FAULTED, 1,
                          start_time=T0, end_time=T0 + MINUTE,
                          error_code="MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade")
    assert decide(T0 + 2 * MINUTE, fleet(), past=[rolled_back]) == trigger.TriggerDecision()


def test_the_wait_counts_from_when_the_run_in_progress_ended() -> None:
    model_run = PastRun(RunKind.MODEL, StartedBy.PLATFORM, "1.0.0", RunStatus.COMPLETED, 1,
                        start_time=T0, end_time=T0 + 2 * 60 * MINUTE)
    d = decide(T0 + 2 * 60 * MINUTE + MINUTE, fleet(unhealthy=10), past=[model_run])
    assert d.pending is not None and d.pending.waiting_since == T0 + 2 * 60 * MINUTE
    assert d.failed_attempt is None


def test_without_a_gate_the_run_starts_whatever_the_health() -> None:
    assert decide(T0, fleet(unhealthy=10), gate=None).start is not None


@given(total=st.integers(1, 40), unhealthy=st.integers(0, 40), percent=st.integers(5, 100),
       waited=st.integers(0, 600))
def test_no_automatic_run_starts_while_the_set_is_over_the_gate(
        total: int, unhealthy: int, percent: int, waited: int) -> None:
    unhealthy = min(unhealthy, total)
    gate = HealthGate(max_unhealthy_instance_percent=percent, health_timeout=5 * MINUTE)
    d = decide(T0 + timedelta(seconds=waited), fleet(total, unhealthy), gate=gate)
    over = unhealthy * 100 > percent * total
    assert (d.start is not None) is (not over)
    assert (d.failed_attempt is not None) is (over and waited >= 300)


# -- item 3: the pending status tells the truth ------------------------------------------------
def test_a_version_rolling_out_now_is_not_pending_behind_itself() -> None:
    d = decide(T0 + MINUTE, fleet(), active=True, active_target="1.1.0")
    assert d.pending is None


def test_a_newer_version_than_the_run_in_progress_waits_for_it() -> None:
    d = decide(T0 + MINUTE, fleet(), active=True, active_target="1.0.5")
    assert d.pending is not None and d.pending.waiting_for is WaitingFor.RUN_IN_PROGRESS
