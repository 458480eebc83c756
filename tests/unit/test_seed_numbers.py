"""Every number the seed gives, as a worked example through the pure core.

* batches of at most 20 % of the whole scale set, at least one instance;
* the three 20 % gates: exactly 20 % passes, just over stops (before the first
  batch, between batches, among upgraded instances);
* the 5-minute health wait, to the second;
* an automatic run restores the previous OS disk; a manual one never does.

(The history rule, five attempts of the last two months newest first, is in
``tests/integration/test_history_api.py``.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from scaleset.clock import EPOCH
from scaleset.drivers.simulated import Faults, HealthEvent, Timings
from scaleset.model.instance import HealthState
from scaleset.upgrade.run import (
    BEFORE_ROLLING_UPGRADE,
    FINISHED_WITH_FAILURES,
    IN_ROLLING_UPGRADE,
    UPGRADED_UNHEALTHY,
)
from scaleset.upgrade.state import Policy, RunStatus, StartedBy, Step

from tests.unit.harness import NEW, OLD, Harness

UNHEALTHY = HealthState.UNHEALTHY
FIVE_MINUTES = timedelta(minutes=5)


@pytest.mark.parametrize(("n", "sizes"), [
    (1, [1]),
    (2, [1, 1]),
    (3, [1, 1, 1]),
    (4, [1, 1, 1, 1]),
    (5, [1] * 5),
    (9, [1] * 9),            # 20 % of 9 is 1.8: rounded down
    (10, [2] * 5),
    (11, [2] * 5 + [1]),     # 2.2 -> 2; the last batch holds what is left
    (100, [20] * 5),
])
def test_batches_hold_at_most_a_fifth_of_the_set_and_at_least_one(n: int,
                                                                  sizes: list[int]) -> None:
    h = Harness.build(n)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert h.batch_sizes() == sizes
    assert all(h.image(str(i)) == NEW for i in range(n))


# -- gate 1: before the first batch ----------------------------------------------------------
@pytest.mark.parametrize(("n", "unhealthy", "stops"), [
    (10, 2, False), (10, 3, True), (100, 20, False), (100, 21, True), (5, 1, False),
    (5, 2, True),
])
def test_the_gate_before_the_first_batch(n: int, unhealthy: int, stops: bool) -> None:
    sick = tuple(str(i) for i in range(n - unhealthy, n))
    h = Harness.build(n, faults=Faults(unhealthy_at_start=sick))
    run = h.run_to_end()
    if stops:
        assert run.status is RunStatus.FAULTED and run.batches == ()
        assert run.error is not None and run.error.code == BEFORE_ROLLING_UPGRADE
        assert f"{unhealthy} of {n}" in run.error.message
    else:
        assert run.batches, "exactly 20 % unhealthy must not stop the run"
        assert not (run.error and run.error.code == BEFORE_ROLLING_UPGRADE)


# -- gate 2: the whole set, between batches ----------------------------------------------------
@pytest.mark.parametrize(("others", "stops"), [(2, False), (3, True)])
def test_the_gate_between_batches(others: int, stops: bool) -> None:
    who = tuple(str(i) for i in (2, 3, 4)[:others])  # not in batch 1 (0 and 5)
    faults = Faults(events=(HealthEvent(timedelta(seconds=30), who, UNHEALTHY),
                            HealthEvent(timedelta(seconds=400), who, HealthState.HEALTHY)))
    h = Harness.build(10, faults=faults)
    run = h.run_to_end()
    if stops:
        assert run.status is RunStatus.FAULTED and len(run.batches) == 1
        assert run.error is not None and run.error.code == IN_ROLLING_UPGRADE
        assert run.end_time == run.batches[0].end  # at the end of the batch
    else:
        assert run.status is RunStatus.COMPLETED


# -- gate 3: among upgraded instances ----------------------------------------------------------
@pytest.mark.parametrize(("failing", "stops"), [(4, False), (5, True)])
def test_the_gate_among_upgraded_instances(failing: int, stops: bool) -> None:
    # 100 instances, batches of 20: 4 failures of 20 upgraded is 20 %, 5 is 25 %.
    first_batch = [str(i) for i in range(0, 100, 5)]  # update domain 0 goes first
    assert len(first_batch) == 20
    broken = tuple(first_batch[:failing])
    faults = Faults(events=(HealthEvent(timedelta(seconds=75), broken, UNHEALTHY),))
    h = Harness.build(100, faults=faults)
    run = h.run_to_end()
    if stops:
        assert run.status is RunStatus.FAULTED and len(run.batches) == 1
        assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
        assert "5 of 20" in run.error.message
    else:
        # Every batch ran (the second is smaller while the 4 restored instances boot);
        # the run ends Faulted only because 4 instances do not run the target.
        assert run.error is not None and run.error.code == FINISHED_WITH_FAILURES
        assert sum(h.batch_sizes()) == 100 and len(run.batches) > 1
        assert all(h.image(str(i)) == NEW for i in range(100) if str(i) not in broken)
    assert all(h.run.instances[iid].step is Step.ROLLED_BACK for iid in broken)


# -- the 5-minute health wait ------------------------------------------------------------------
@pytest.mark.parametrize(("healthy_after_boot", "succeeds"), [
    (FIVE_MINUTES, True), (FIVE_MINUTES + timedelta(seconds=1), False),
])
def test_an_upgraded_instance_has_five_minutes_to_the_second(healthy_after_boot: timedelta,
                                                              succeeds: bool) -> None:
    timings = Timings(reimage=timedelta(seconds=60), boot=timedelta(seconds=30),
                      healthy=healthy_after_boot)
    h = Harness.build(1, timings=timings)
    run = h.run_to_end()
    booted = EPOCH + timedelta(seconds=90)
    if succeeds:
        assert run.status is RunStatus.COMPLETED
        assert run.end_time == booted + FIVE_MINUTES
    else:
        assert run.instances["0"].step is Step.ROLLED_BACK
        failed_at = h.first_time(lambda p: p.after.instances["0"].step is Step.ROLLING_BACK)
        assert failed_at == booted + FIVE_MINUTES
        assert "5 min" in (run.instances["0"].reason or "")


# -- who rolls back ----------------------------------------------------------------------------
@pytest.mark.parametrize(("started_by", "rolled_back"), [
    (StartedBy.PLATFORM, True), (StartedBy.USER, False),
])
def test_an_automatic_run_rolls_back_a_manual_one_does_not(started_by: StartedBy,
                                                           rolled_back: bool) -> None:
    faults = Faults(events=(HealthEvent(timedelta(seconds=75), ("5",), UNHEALTHY),))
    h = Harness.build(10, faults=faults, started_by=started_by,
                      policy=Policy(rollback_failed_instances_on_policy_breach=True))
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    step = run.instances["5"].step
    assert (step is Step.ROLLED_BACK) is rolled_back
    assert h.image("5") == (OLD if rolled_back else NEW)
    assert h.rollbacks("5") == (1 if rolled_back else 0)
