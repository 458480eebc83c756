"""The seed's worked examples ("How does automatic OS image upgrade work?"), through decide.

Every example runs the pure core against the simulated driver on a virtual
clock (``harness.Harness``); the harness also checks the invariants of every
pass. Default timings: an upgrade replaces the OS disk after 60 s, the
instance has booted at 90 s and reports Healthy at 110 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from scaleset.clock import EPOCH
from scaleset.drivers.simulated import Faults, HealthEvent
from scaleset.model.instance import HealthState
from scaleset.upgrade.actions import ReleasePreviousOsDisk, RollbackInstance, UpgradeInstance
from scaleset.upgrade.run import (
    BEFORE_ROLLING_UPGRADE,
    FINISHED_WITH_FAILURES,
    IN_ROLLING_UPGRADE,
    UPGRADED_UNHEALTHY,
)
from scaleset.upgrade.state import Policy, RunStatus, StartedBy, Step

from tests.unit.harness import NEW, OLD, SID, Harness, Placement

BOOTED = timedelta(seconds=90)     # first batch: reimage (60 s) + boot (30 s)
UNHEALTHY = HealthState.UNHEALTHY


def breaks(*instances: str, at: timedelta = timedelta(seconds=75)) -> Faults:
    """These instances never become healthy after their upgrade in the first batch.

    They turn Unhealthy after their new OS disk is in place (60 s) and before it
    has booted (90 s), so the new image never reports Healthy on them.
    """
    return Faults(events=(HealthEvent(at, instances, UNHEALTHY),))


def steps(h: Harness) -> dict[str, Step]:
    return {iid: ri.step for iid, ri in h.run.instances.items()}


# -- batch sizes ---------------------------------------------------------------------
def test_ten_instances_upgrade_in_five_batches_of_two() -> None:
    h = Harness.build(10)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert run.error is None
    assert h.batch_sizes() == [2, 2, 2, 2, 2]
    assert all(h.image(str(i)) == NEW for i in range(10))
    assert all(h.reimages(str(i)) == 1 for i in range(10))
    # a healthy upgrade releases the kept OS disk
    assert len(h.actions(ReleasePreviousOsDisk)) == 10
    snapshot = h.driver.observe(SID, h.clock.now())
    assert all(i.previous_os_disk_id is None for i in snapshot.instances.values())
    progress = run.progress()
    assert (progress.successful, progress.failed, progress.pending) == (10, 0, 0)


def test_four_instances_upgrade_one_at_a_time() -> None:
    h = Harness.build(4)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert h.batch_sizes() == [1, 1, 1, 1]


def test_each_batch_waits_for_the_previous_one_to_be_healthy() -> None:
    h = Harness.build(10)
    run = h.run_to_end()
    for earlier, later in zip(run.batches, run.batches[1:], strict=False):
        assert earlier.end is not None
        assert later.start >= earlier.end
        # the batch ends when its instances report Healthy: 110 s after it started
        assert earlier.end - earlier.start == timedelta(seconds=110)


# -- the health gate before the first batch ---------------------------------------------
def test_too_many_unhealthy_instances_before_the_start_means_no_batch_starts() -> None:
    h = Harness.build(10, faults=Faults(unhealthy_at_start=("1", "4", "8")))
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.batches == ()
    assert run.error is not None
    assert run.error.code == BEFORE_ROLLING_UPGRADE
    assert "3 of 10" in run.error.message
    assert h.actions(UpgradeInstance) == []
    assert all(h.image(str(i)) == OLD for i in range(10))


def test_exactly_the_allowed_share_unhealthy_before_the_start_does_not_stop_the_run() -> None:
    # 2 of 10 is 20%: allowed. The batches shrink so that at most 2 are out at once.
    h = Harness.build(10, faults=Faults(unhealthy_at_start=("1", "4")))
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert run.batches[0].instance_ids == ("0",)


# -- an upgraded instance that never becomes healthy --------------------------------------
def test_an_unhealthy_upgraded_instance_faults_the_run_after_its_batch_and_is_rolled_back(
) -> None:
    h = Harness.build(10, faults=breaks("5"))
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert "1 of 2" in run.error.message
    assert len(run.batches) == 1 and run.batches[0].instance_ids == ("0", "5")
    # the broken instance was restored to its previous OS disk; the healthy one kept the new one
    assert steps(h)["5"] is Step.ROLLED_BACK
    assert h.image("5") == OLD
    assert h.rollbacks("5") == 1
    assert steps(h)["0"] is Step.SUCCEEDED
    assert h.image("0") == NEW
    # nothing else was touched
    assert all(h.image(str(i)) == OLD and h.reimages(str(i)) == 0 for i in range(10)
               if str(i) not in ("0", "5"))
    assert {s for iid, s in steps(h).items() if iid not in ("0", "5")} == {Step.PENDING}


@pytest.mark.parametrize("timeout", [timedelta(minutes=2), timedelta(minutes=5)])
def test_the_health_wait_is_the_policys_health_timeout_counted_from_boot(
    timeout: timedelta,
) -> None:
    h = Harness.build(10, faults=breaks("5"), policy=Policy(health_timeout=timeout))
    h.run_to_end()
    failed_at = h.first_time(lambda p: p.after.instances["5"].step is Step.ROLLING_BACK)
    assert failed_at - EPOCH == BOOTED + timeout
    reason = h.run.instances["5"].reason or ""
    assert f"{int(timeout.total_seconds() // 60)} min" in reason


def test_failures_count_across_batches_and_the_run_stops_once_over_the_threshold() -> None:
    # batches of up to 4; 30% of upgraded instances may fail: 1 of 4 is fine, 3 of 7 is not.
    # The second batch holds 3: the instance rolled back in the first is still booting
    # (not healthy) when it starts, and counts against the batch.
    policy = Policy(max_batch_instance_percent=40, max_unhealthy_upgraded_instance_percent=30)
    faults = Faults(events=(
        HealthEvent(timedelta(seconds=75), ("5",), UNHEALTHY),         # batch 1
        HealthEvent(timedelta(seconds=490), ("7", "3"), UNHEALTHY),    # batch 2 (from 420 s)
    ))
    h = Harness.build(10, faults=faults, policy=policy)
    run = h.run_to_end()
    assert [b.instance_ids for b in run.batches] == [("0", "5", "1", "6"), ("2", "7", "3")]
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert "3 of 7" in run.error.message
    assert {iid for iid, s in steps(h).items() if s is Step.ROLLED_BACK} == {"5", "7", "3"}
    assert steps(h)["4"] is Step.PENDING and steps(h)["9"] is Step.PENDING


# -- pauses and cancel ------------------------------------------------------------------
def test_pause_time_between_batches_spaces_the_batches() -> None:
    pause = timedelta(minutes=3)
    h = Harness.build(6, policy=Policy(max_batch_instance_percent=34,
                                       pause_time_between_batches=pause))
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert h.batch_sizes() == [2, 2, 2]
    for earlier, later in zip(run.batches, run.batches[1:], strict=False):
        assert earlier.end is not None
        assert later.start - earlier.end == pause
    assert run.end_time is not None
    assert run.end_time - run.start_time == 3 * timedelta(seconds=110) + 2 * pause


def test_cancel_stops_the_run_after_the_current_batch() -> None:
    h = Harness.build(10)
    h.run_until(lambda h: h.run.open_batch is not None)
    h.clock.advance(timedelta(seconds=30))
    h.cancel()
    run = h.run_to_end()
    assert run.status is RunStatus.CANCELLED
    assert run.error is None
    assert len(run.batches) == 1
    # the batch in flight finished its upgrade; nothing else started
    assert [iid for iid in sorted(run.instances) if h.image(iid) == NEW] == ["0", "5"]
    assert steps(h)["0"] is Step.SUCCEEDED and steps(h)["5"] is Step.SUCCEEDED
    assert run.progress().pending == 8
    assert len(h.actions(UpgradeInstance)) == 2


def test_cancel_during_a_pause_stops_the_run_at_once() -> None:
    h = Harness.build(10, policy=Policy(pause_time_between_batches=timedelta(minutes=10)))
    h.run_until(lambda h: len(h.run.batches) == 1 and h.run.open_batch is None)
    h.clock.advance(timedelta(minutes=1))
    h.cancel()
    h.step()
    assert h.run.status is RunStatus.CANCELLED
    assert len(h.run.batches) == 1


# -- who may roll back --------------------------------------------------------------------
def test_a_manual_upgrade_never_rolls_back() -> None:
    h = Harness.build(10, faults=breaks("5"), started_by=StartedBy.USER,
                      policy=Policy(rollback_failed_instances_on_policy_breach=True))
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert steps(h)["5"] is Step.FAILED
    assert h.image("5") == NEW          # stays on the new image
    assert h.actions(RollbackInstance) == []
    assert h.rollbacks("5") == 0
    assert RunStatus.ROLLING_BACK not in h.statuses()


def test_disable_automatic_rollback_leaves_a_failed_instance_on_the_new_image() -> None:
    h = Harness.build(10, faults=breaks("5"), disable_automatic_rollback=True)
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert steps(h)["5"] is Step.FAILED
    assert h.image("5") == NEW
    assert h.actions(RollbackInstance) == []


def test_rollback_on_policy_breach_restores_failed_instances_even_without_automatic_rollback(
) -> None:
    h = Harness.build(10, faults=breaks("5"), disable_automatic_rollback=True,
                      policy=Policy(rollback_failed_instances_on_policy_breach=True))
    run = h.run_to_end()
    assert h.statuses() == [RunStatus.ROLLING_FORWARD, RunStatus.ROLLING_BACK, RunStatus.FAULTED]
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert steps(h)["5"] is Step.ROLLED_BACK
    assert h.image("5") == OLD
    # the healthy member of the batch keeps its upgrade
    assert steps(h)["0"] is Step.SUCCEEDED and h.image("0") == NEW
    assert [a.instance_id for a in h.actions(RollbackInstance)] == ["5"]


def test_below_the_threshold_failed_instances_are_kept_and_the_run_continues() -> None:
    # without a breach, disableAutomaticRollback keeps the failed instance as it is
    h = Harness.build(10, faults=breaks("5"), disable_automatic_rollback=True,
                      policy=Policy(max_unhealthy_upgraded_instance_percent=50,
                                    rollback_failed_instances_on_policy_breach=True))
    run = h.run_to_end()
    assert steps(h)["5"] is Step.FAILED and h.image("5") == NEW
    assert run.error is not None and run.error.code == FINISHED_WITH_FAILURES


# -- the whole scale set's health during the run ------------------------------------------
def test_unrelated_instances_going_unhealthy_mid_batch_stop_the_run_at_the_end_of_the_batch(
) -> None:
    faults = Faults(events=(HealthEvent(timedelta(seconds=30), ("2", "3", "4"), UNHEALTHY),))
    h = Harness.build(10, faults=faults)
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == IN_ROLLING_UPGRADE
    assert "3 of 10" in run.error.message
    # the batch in flight completed; no other batch started
    assert len(run.batches) == 1
    assert steps(h)["0"] is Step.SUCCEEDED and steps(h)["5"] is Step.SUCCEEDED
    assert run.end_time is not None and run.end_time - EPOCH == timedelta(seconds=110)


def test_instances_recovering_before_the_batch_ends_let_the_run_continue() -> None:
    faults = Faults(events=(
        HealthEvent(timedelta(seconds=30), ("2", "3", "4"), UNHEALTHY),
        HealthEvent(timedelta(seconds=100), ("2", "3", "4"), HealthState.HEALTHY),
    ))
    h = Harness.build(10, faults=faults)
    assert h.run_to_end().status is RunStatus.COMPLETED


# -- protection ---------------------------------------------------------------------------
def test_protected_instances_are_never_upgraded() -> None:
    placement = {str(i): Placement(update_domain=i % 5, protected=i in (3, 7)) for i in range(10)}
    h = Harness.build(placement)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert set(run.instances) == set(placement) - {"3", "7"}
    for iid in ("3", "7"):
        assert h.image(iid) == OLD and h.reimages(iid) == 0
    assert all(h.image(iid) == NEW for iid in run.instances)
    assert not any(a.instance_id in ("3", "7") for a in h.actions(UpgradeInstance))


def test_an_instance_protected_mid_run_leaves_the_run_untouched() -> None:
    h = Harness.build(10)
    h.run_until(lambda h: h.run.open_batch is not None)
    h.placement["9"] = Placement(update_domain=4, protected=True)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert "9" not in run.instances
    assert h.image("9") == OLD and h.reimages("9") == 0


# -- a run that ends with failures below the threshold -------------------------------------
def test_a_run_whose_batches_all_ran_but_with_failed_instances_ends_faulted() -> None:
    policy = Policy(max_unhealthy_upgraded_instance_percent=50)
    h = Harness.build(10, faults=breaks("5"), policy=policy)
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == FINISHED_WITH_FAILURES
    assert run.progress().pending == 0
    assert steps(h)["5"] is Step.ROLLED_BACK and h.image("5") == OLD
    assert all(h.image(str(i)) == NEW for i in range(10) if i != 5)


def test_a_completed_run_means_every_eligible_instance_runs_the_target() -> None:
    h = Harness.build(25, policy=Policy(max_batch_instance_percent=40))
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert {h.image(iid) for iid in run.instances} == {NEW}


# -- a lost action ------------------------------------------------------------------------
def test_a_lost_upgrade_is_asked_for_again_under_the_same_id_and_happens_once() -> None:
    lost: list[UpgradeInstance] = []

    def lose_first_upgrade_of_5(index: int, action: object) -> bool:
        if isinstance(action, UpgradeInstance) and action.instance_id == "5" and not lost:
            lost.append(action)
            return True
        return False

    h = Harness.build(10)
    h.lose = lose_first_upgrade_of_5
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert len(lost) == 1
    issued = [a for a in h.actions(UpgradeInstance) if a.instance_id == "5"]
    assert len(issued) == 2
    assert {a.op_id for a in issued} == {lost[0].op_id}
    # asked for again on the very next pass
    lost_at = next(i for i, p in enumerate(h.passes) if lost[0] in p.decision.actions)
    assert lost[0] not in h.passes[lost_at].submitted
    assert lost[0] in h.passes[lost_at + 1].decision.actions
    assert lost[0] in h.passes[lost_at + 1].submitted
    assert h.reimages("5") == 1
    assert h.image("5") == NEW


def test_a_lost_rollback_is_asked_for_again_and_the_instance_is_restored_once() -> None:
    lost: list[RollbackInstance] = []

    def lose_first_rollback(index: int, action: object) -> bool:
        if isinstance(action, RollbackInstance) and not lost:
            lost.append(action)
            return True
        return False

    h = Harness.build(10, faults=breaks("5"))
    h.lose = lose_first_rollback
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert len(lost) == 1
    assert {a.op_id for a in h.actions(RollbackInstance)} == {lost[0].op_id}
    assert h.rollbacks("5") == 1 and h.image("5") == OLD
    assert run.instances["5"].step is Step.ROLLED_BACK


def test_the_same_action_submitted_twice_is_executed_once() -> None:
    h = Harness.build(4)
    first = h.step()
    for action in first.decision.actions:
        h.submit(action)          # a shell that crashed after acting and acted again
    h.run_to_end()
    assert all(h.reimages(str(i)) == 1 for i in range(4))
