"""Properties of every run, over random fleets, policies and fault schedules (Hypothesis).

The harness checks the per-pass rules at every pass (``harness.check_pass``:
batch sizes against the unhealthy instances outside the batch, no batch while
the scale set is over maxUnhealthyInstancePercent or after the
upgraded-unhealthy rule was breached, legal status and step moves, progress
adding up, no rollback in a User run, protected instances untouched) and the
end-of-run rules (``harness.check_end``: data disks unchanged, a Completed run
leaves every eligible instance on the target). The tests here add the rules
about who ends where after a failure, termination and determinism.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleset.drivers.simulated import Faults, HealthEvent, Timings
from scaleset.model.instance import HealthState
from scaleset.upgrade.actions import RollbackInstance, rollback_op_id, upgrade_op_id
from scaleset.upgrade.observations import OperationState
from scaleset.upgrade.run import UPGRADED_UNHEALTHY, decide
from scaleset.upgrade.state import FAILED_STEPS, Policy, RunStatus, StartedBy, Step

from tests.unit.harness import NEW, OLD, SID, Harness, Placement

# How faulty the world is: most runs should get far (rare faults), some break at once.
FAULT_LEVELS = {
    "none": (0.0,),
    "rare": (0.0, 0.0, 0.01, 0.03),
    "some": (0.0, 0.05, 0.2),
    "heavy": (0.0, 0.2, 0.5, 1.0),
}
DELAYS = st.sampled_from([timedelta(0), timedelta(seconds=30), timedelta(minutes=5)])


@dataclass(frozen=True)
class Scenario:
    placement: dict[str, Placement]
    policy: Policy
    started_by: StartedBy
    disable_automatic_rollback: bool
    timings: Timings
    faults: Faults
    seed: int
    cancel_after_passes: int | None

    def harness(self) -> Harness:
        return Harness.build(
            self.placement, policy=self.policy, started_by=self.started_by,
            disable_automatic_rollback=self.disable_automatic_rollback,
            timings=self.timings, faults=self.faults, seed=self.seed,
        )

    def play(self) -> Harness:
        h = self.harness()
        if self.cancel_after_passes is not None:
            h.run_until(lambda h: len(h.passes) >= self.cancel_after_passes)  # type: ignore[operator]
            h.cancel()
        h.run_to_end()
        return h


@st.composite
def scenarios(draw: st.DrawFn, *, max_instances: int = 500) -> Scenario:
    # Mostly small fleets (fast, and where the rounding edges are), some up to max_instances.
    n = draw(st.one_of(st.integers(1, 30), st.integers(1, max_instances)))
    zones = draw(st.integers(0, 3))
    protected_share = draw(st.sampled_from([0.0, 0.0, 0.05, 0.2, 1.0]))
    unhealthy_share = draw(st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.2, 0.3, 0.6]))
    layout = random.Random(draw(st.integers(0, 2**32 - 1)))
    ids = [str(i) for i in range(n)]
    placement = {
        iid: Placement(
            zone=str(layout.randrange(zones) + 1) if zones else None,
            update_domain=layout.randrange(5),
            protected=layout.random() < protected_share,
        )
        for iid in ids
    }
    unhealthy_at_start = tuple(iid for iid in ids if layout.random() < unhealthy_share)

    events = []
    for _ in range(draw(st.integers(0, 3))):
        share = draw(st.sampled_from([0.05, 0.2, 0.5]))
        who = tuple(iid for iid in ids if layout.random() < share)
        events.append(HealthEvent(
            at=timedelta(seconds=draw(st.integers(0, 3600))),
            instances=who,
            health=draw(st.sampled_from([HealthState.UNHEALTHY, HealthState.HEALTHY])),
        ))

    level = draw(st.sampled_from(["rare", "none", "some", "heavy"]))
    probability = st.sampled_from(FAULT_LEVELS[level])
    faults = Faults(
        reimage_fail_probability=draw(probability),
        never_healthy_probability=draw(probability),
        late_healthy_probability=draw(probability),
        late_by=draw(st.sampled_from([timedelta(minutes=1), timedelta(minutes=10)])),
        flap_probability=draw(probability),
        flap_period=draw(st.sampled_from([timedelta(seconds=20), timedelta(seconds=90)])),
        extension_fail_probability=draw(probability),
        rollback_fail_probability=draw(probability),
        unhealthy_at_start=unhealthy_at_start,
        events=tuple(events),
    )
    policy = Policy(
        # biased towards small batches and tolerant gates, so that many runs go far
        max_batch_instance_percent=draw(st.one_of(st.integers(5, 25), st.integers(5, 100))),
        max_unhealthy_instance_percent=draw(st.one_of(st.integers(5, 100),
                                                      st.integers(20, 100))),
        max_unhealthy_upgraded_instance_percent=draw(st.one_of(st.integers(0, 100),
                                                               st.integers(20, 100))),
        pause_time_between_batches=draw(DELAYS),
        prioritize_unhealthy_instances=draw(st.booleans()),
        enable_cross_zone_upgrade=draw(st.booleans()),
        rollback_failed_instances_on_policy_breach=draw(st.booleans()),
        health_timeout=draw(st.sampled_from([timedelta(minutes=1), timedelta(minutes=2),
                                             timedelta(minutes=5)])),
    )
    timings = Timings(
        reimage=timedelta(seconds=draw(st.integers(1, 120))),
        boot=timedelta(seconds=draw(st.integers(1, 60))),
        healthy=timedelta(seconds=draw(st.integers(0, 120))),
    )
    return Scenario(
        placement=placement,
        policy=policy,
        started_by=draw(st.sampled_from([StartedBy.PLATFORM, StartedBy.USER])),
        disable_automatic_rollback=draw(st.booleans()),
        timings=timings,
        faults=faults,
        seed=draw(st.integers(0, 2**16)),
        cancel_after_passes=draw(st.one_of(st.none(), st.integers(1, 40))),
    )


FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])


@settings(FAST, max_examples=250)
@given(scenarios())
def test_every_run_keeps_the_rules_and_ends(scenario: Scenario) -> None:
    """Any fleet, policy and fault schedule: the per-pass and end-of-run rules hold, and the
    loop terminates (the harness raises ``Stuck`` otherwise)."""
    h = scenario.play()
    run = h.run
    assert run.status.is_terminal
    assert (run.error is None) == (run.status is not RunStatus.FAULTED)
    snapshot = h.driver.observe(SID, h.clock.now())
    ops = snapshot.operations

    eligible = {iid for iid, p in scenario.placement.items() if not p.protected}
    assert set(run.instances) == eligible   # nobody joins or leaves in this world

    breached = run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    restored_on_breach = breached and run.rollback_on_breach
    for iid, ri in run.instances.items():
        seen = snapshot.instances[iid]
        upgrade = ops.get(upgrade_op_id(run.run_id, iid))
        rollback = ops.get(rollback_op_id(run.run_id, iid))
        health_failed = (ri.step in FAILED_STEPS and upgrade is not None
                         and upgrade.state is OperationState.SUCCEEDED)
        if ri.step is Step.SUCCEEDED:
            assert seen.image_version == NEW, iid
        if ri.step is Step.PENDING:
            assert seen.image_version == OLD and upgrade is None, iid
        if ri.step is Step.ROLLED_BACK:
            assert seen.image_version == OLD, iid
            assert rollback is not None and rollback.state is OperationState.SUCCEEDED
        if ri.step is Step.ROLLBACK_FAILED:
            assert rollback is not None and rollback.state is OperationState.FAILED
        if run.rollback_on_failure and ri.step in FAILED_STEPS:
            # automatic rollback: every failed instance was restored, or its restore failed
            assert ri.step in (Step.ROLLED_BACK, Step.ROLLBACK_FAILED), (iid, ri.step)
        if health_failed and ri.step is Step.FAILED:
            # kept as it is (no automatic rollback, no breach restore): still on the new image
            assert not run.rollback_on_failure and not restored_on_breach
            assert seen.image_version == NEW, iid
        if restored_on_breach:
            assert ri.step is not Step.FAILED, iid
        # data disks survive whatever happened to the OS disk
        assert seen.data_disk_ids == (f"{iid}-data-0", f"{iid}-data-1")

    if scenario.started_by is StartedBy.USER:
        assert not run.rollback_on_failure and not run.rollback_on_breach
        assert h.actions(RollbackInstance) == []
        assert all(h.rollbacks(iid) == 0 for iid in scenario.placement)
    if not run.rollback_on_failure and not restored_on_breach:
        assert h.actions(RollbackInstance) == []
    if scenario.disable_automatic_rollback:
        assert not run.rollback_on_failure

    if run.status is RunStatus.COMPLETED:
        progress = run.progress()
        assert progress.successful == len(run.instances)
        assert {snapshot.instances[iid].image_version for iid in run.instances} <= {NEW}
    if run.status is RunStatus.CANCELLED:
        assert run.cancel_requested
        assert run.progress().failed == 0 or not breached

    # every batch ran one after the other, and each instance was upgraded at most once
    for earlier, later in zip(run.batches, run.batches[1:], strict=False):
        assert earlier.end is not None and later.start >= earlier.end
        assert later.start - earlier.end >= run.policy.pause_time_between_batches
    assert all(h.reimages(iid) <= 1 for iid in scenario.placement)
    batched = [iid for b in run.batches for iid in b.instance_ids]
    assert len(batched) == len(set(batched))


@settings(FAST, max_examples=40)
@given(scenarios(max_instances=60))
def test_the_same_inputs_and_seed_give_the_same_decisions(scenario: Scenario) -> None:
    first, second = scenario.play(), scenario.play()
    assert [(p.now, p.decision) for p in first.passes] == \
           [(p.now, p.decision) for p in second.passes]
    assert first.run == second.run


@settings(FAST, max_examples=40)
@given(scenarios(max_instances=80), st.data())
def test_a_second_pass_on_the_same_observation_changes_nothing_and_only_re_asks(
    scenario: Scenario, data: st.DataObject
) -> None:
    """decide on its own result, with the same observation and time, is a fixpoint: no new
    batch or step, and it asks again only for operations the driver had not seen, by the
    ids it already used."""
    h = scenario.harness()
    h.freeze_operations = True   # the observation as it was, not the driver's live view
    h.run_to_end()
    index = data.draw(st.integers(0, len(h.passes) - 1))
    p = h.passes[index]
    again = decide(p.after, p.observations, p.now)
    assert again.run == p.after
    assert again.changed == frozenset()
    assert again.events == ()
    upgrade_ids = {a.op_id for a in p.decision.actions if hasattr(a, "op_id")}
    for action in again.actions:
        op_id = getattr(action, "op_id", None)
        if op_id is not None:
            # only what the driver had not seen at observation time, and already asked for
            assert p.observations.operation(op_id).state is OperationState.UNKNOWN
            assert op_id in upgrade_ids
