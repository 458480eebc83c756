"""The rolling-upgrade state machine: ``decide(run, observations, now) -> Decision``.

This module owns every rule of a run's life that is not arithmetic:

1. Before the first batch and before every later one, no batch starts while
   more than ``maxUnhealthyInstancePercent`` of the scale set is unhealthy;
   the run faults (``...BeforeRollingUpgrade`` before the first batch,
   ``...InRollingUpgrade`` later).
2. A batch (sized by ``policy.plan_batch``) has its OS disks replaced; each
   upgraded instance then has ``policy.health_timeout`` to become Healthy.
3. An instance that fails (its reimage fails, or it is not healthy in time)
   is restored to its previous OS disk when automatic rollback applies
   (automatic runs, unless ``disableAutomaticRollback``; never a User run).
4. When a batch settles: more than ``maxUnhealthyUpgradedInstancePercent``
   unhealthy among all instances upgraded so far (every failed upgrade, rolled
   back or not, plus upgraded instances that are unhealthy again) faults the
   run (and, with ``rollbackFailedInstancesOnPolicyBreach``, restores the
   failed ones first, in status RollingBack); no pending instance left ends it
   Completed (or Faulted if some upgrades failed, because a Completed run
   means every eligible instance runs the target); a cancel ends it
   Cancelled; a scale set now over ``maxUnhealthyInstancePercent`` faults it.
5. Otherwise the next batch waits ``pauseTimeBetweenBatches``.
6. A batch that has not settled within ``policy.batch_timeout`` (an operation
   that never finishes) faults the run with ``RollingUpgradeTimeoutError``.
7. Service Fabric (``policy.by_update_domain``): a batch is one whole update
   domain, lowest first, and starts only while the cluster reports healthy;
   a cluster still unhealthy ``policy.health_timeout`` after the batch became
   due faults the run (``ServiceFabricClusterUnhealthy``), instances untouched.

The pass is level-triggered: it reads the whole run and the whole
observation and never depends on which event woke it. An operation the
driver does not know (a crash ate it) is simply asked for again under the
same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final

from scaleset.model.instance import HealthState
from scaleset.upgrade import policy as policy_rules
from scaleset.upgrade.actions import (
    Action,
    Decision,
    Event,
    ReleasePreviousOsDisk,
    RollbackInstance,
    UpgradeInstance,
    rollback_op_id,
    upgrade_op_id,
)
from scaleset.upgrade.observations import InstanceObservation, Observations, OperationState
from scaleset.upgrade.state import (
    FAILED_STEPS,
    IN_FLIGHT_STEPS,
    SETTLED_STEPS,
    Batch,
    Policy,
    Run,
    RunError,
    RunInstance,
    RunKind,
    RunStatus,
    StartedBy,
    Step,
    Target,
)

# Azure's error codes for a run that stops.
BEFORE_ROLLING_UPGRADE: Final = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
IN_ROLLING_UPGRADE: Final = "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
UPGRADED_UNHEALTHY: Final = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
FINISHED_WITH_FAILURES: Final = "RollingUpgradeInProgressWithFailedUpgradedVMs"
TIMED_OUT: Final = "RollingUpgradeTimeoutError"
CLUSTER_UNHEALTHY: Final = "ServiceFabricClusterUnhealthy"
CLUSTER_RECHECK: Final = timedelta(seconds=1)
"""How soon an unhealthy cluster is looked at again (the driver's events also wake the shell)."""


def on_target(observed: InstanceObservation, target: Target) -> bool:
    """Whether an instance already runs the image version and model of ``target``."""
    image_ok = target.image_version is None or observed.image_version == target.image_version
    return image_ok and observed.generation >= target.generation


def start_run(
    *,
    run_id: str,
    scale_set_id: str,
    kind: RunKind,
    started_by: StartedBy,
    target: Target,
    policy: Policy,
    fleet: Mapping[str, InstanceObservation],
    now: datetime,
    disable_automatic_rollback: bool = False,
    all_at_once: bool = False,
    only: Iterable[str] | None = None,
) -> Run:
    """A new run over the eligible instances of ``fleet``.

    Eligible: not protected from scale-set actions, not already on target,
    and (for a manual upgrade) named in ``only``. Automatic rollback of a
    failed instance applies to Platform OS runs unless disabled; a User run
    never rolls back, not even on a policy breach.
    """
    wanted = None if only is None else set(only)
    force = kind is RunKind.REIMAGE  # a reimage replaces the disk even on the target
    eligible = {
        iid: RunInstance(iid)
        for iid, o in fleet.items()
        if not o.protected and (force or not on_target(o, target))
        and (wanted is None or iid in wanted)
    }
    user_os_run = kind in (RunKind.OS_IMAGE, RunKind.REIMAGE) and started_by is StartedBy.USER
    return Run(
        run_id=run_id,
        scale_set_id=scale_set_id,
        kind=kind,
        started_by=started_by,
        target=target,
        policy=policy,
        start_time=now,
        instances=eligible,
        rollback_on_failure=(
            kind is RunKind.OS_IMAGE
            and started_by is StartedBy.PLATFORM
            and not disable_automatic_rollback
        ),
        rollback_on_breach=policy.rollback_failed_instances_on_policy_breach and not user_os_run,
        all_at_once=all_at_once,
        next_batch_at=now,
    )


def never_started(run: Run, error: RunError, now: datetime) -> Run:
    """A fresh run that ends Faulted before its first batch (an automatic run that waited
    for healthy instances in vain): it goes to the history as one failed attempt."""
    assert not run.batches, "only a run that never started a batch"
    return run.with_status(RunStatus.FAULTED, end_time=now, error=error, next_batch_at=None)


def request_cancel(run: Run, now: datetime) -> Run:
    """The run with a cancel requested; it stops when the current batch settles."""
    if run.status.is_terminal or run.cancel_requested:
        return run
    return run.replace(cancel_requested=True, cancel_time=now)


class _Pass:
    """The working copy of one ``decide`` pass (copy-on-write over the run's instances)."""

    def __init__(self, run: Run, obs: Observations, now: datetime) -> None:
        self.run = run
        self.obs = obs
        self.now = now
        self.instances: dict[str, RunInstance] = dict(run.instances)
        self.changed: set[str] = set()
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.wake: list[datetime] = []

    # -- bookkeeping ---------------------------------------------------------
    def put(self, ri: RunInstance) -> None:
        self.instances[ri.instance_id] = ri
        self.changed.add(ri.instance_id)

    def drop(self, instance_id: str, why: str) -> None:
        del self.instances[instance_id]
        self.changed.add(instance_id)
        self.events.append(Event("InstanceLeftRun", why, instance_id))

    def event(self, kind: str, message: str, instance_id: str | None = None,
              **data: object) -> None:
        self.events.append(Event(kind, message, instance_id, data))

    def finish(self, status: RunStatus, error: RunError | None = None) -> None:
        self.run = self.run.with_status(status, end_time=self.now, error=error or self.run.error)
        text = f"run {status}" + (f": {error.code}: {error.message}" if error else "")
        self.event("RunFinished", text, status=str(status))

    # -- instance steps ------------------------------------------------------
    def fail(self, ri: RunInstance, reason: str) -> None:
        if self.run.rollback_on_failure:
            self.put(ri.to(Step.ROLLING_BACK, reason=reason))
            self.actions.append(RollbackInstance(rollback_op_id(self.run.run_id, ri.instance_id),
                                                 ri.instance_id))
            self.event("InstanceFailed", f"{reason}; restoring its previous OS disk",
                       ri.instance_id)
        else:
            self.put(ri.to(Step.FAILED, reason=reason))
            self.event("InstanceFailed", reason, ri.instance_id)

    def advance(self, ri: RunInstance) -> None:
        run, obs = self.run, self.obs
        iid = ri.instance_id
        if ri.step is Step.UPGRADING:
            op = obs.operation(upgrade_op_id(run.run_id, iid))
            if op.state is OperationState.UNKNOWN:
                self.actions.append(self._upgrade_action(iid))
            elif op.state is OperationState.FAILED:
                self.fail(ri, f"reimage failed: {op.message or 'no reason given'}")
            elif op.state is OperationState.SUCCEEDED:
                deadline = (op.finished_at or self.now) + run.policy.health_timeout
                ri = ri.to(Step.WAITING_HEALTH, health_deadline=deadline)
                self.put(ri)
                self.advance(ri)
        elif ri.step is Step.WAITING_HEALTH:
            observed = obs.instances[iid]
            assert ri.health_deadline is not None
            deadline = ri.health_deadline
            if obs.watching_since is not None:  # the wait may have run out while no one watched
                deadline = max(deadline, obs.watching_since + run.policy.health_timeout)
            if observed.healthy:
                self.put(ri.to(Step.SUCCEEDED))
                self.actions.append(ReleasePreviousOsDisk(iid))
                version = observed.image_version or "the new model"
                self.event("InstanceUpgraded", f"healthy on {version} after its upgrade", iid,
                           imageVersion=observed.image_version)
            elif self.now >= deadline:
                timeout = run.policy.health_timeout
                self.fail(ri, f"not healthy within {_seconds(timeout)} of its upgrade "
                              f"(last health: {observed.health})")
            else:
                self.wake.append(deadline)
        elif ri.step is Step.ROLLING_BACK:
            op = obs.operation(rollback_op_id(run.run_id, iid))
            if op.state is OperationState.UNKNOWN:
                self.actions.append(RollbackInstance(rollback_op_id(run.run_id, iid), iid))
            elif op.state is OperationState.SUCCEEDED:
                self.put(ri.to(Step.ROLLED_BACK))
                self.event("InstanceRolledBack", "previous OS disk restored", iid)
            elif op.state is OperationState.FAILED:
                self.put(ri.to(Step.ROLLBACK_FAILED,
                               reason=f"{ri.reason}; rollback failed: {op.message}"))
                self.event("InstanceRollbackFailed", op.message or "rollback failed", iid)

    def _upgrade_action(self, instance_id: str) -> UpgradeInstance:
        target = self.run.target
        return UpgradeInstance(upgrade_op_id(self.run.run_id, instance_id), instance_id,
                               target.image_version, target.generation)

    def probes_pending(self) -> datetime | None:
        """Until when the gates wait for probes to answer again after a control plane start.

        An instance reads Initializing until its probe answers, and after a restart every
        probe starts over: for one health timeout from the start, a gate that would count
        such instances as unhealthy waits instead of faulting the run. None: gates apply.
        """
        since = self.obs.watching_since
        if since is None or self.now >= since + self.run.policy.health_timeout:
            return None
        if any(o.health is HealthState.INITIALIZING for o in self.obs.instances.values()):
            return since + self.run.policy.health_timeout
        return None

    # -- counting ------------------------------------------------------------
    def count(self, steps: frozenset[Step]) -> int:
        return sum(1 for ri in self.instances.values() if ri.step in steps)

    def gate_evaluated(self, gate: str, count: int, total: int, threshold: int,
                       *, passed: bool) -> None:
        """Record a gate's value against its threshold (the dashboard and CLI draw these)."""
        value = round(count * 100 / total, 2) if total else 0.0
        verdict = "passed" if passed else "breached"
        self.event("GateEvaluated", f"{gate}: {count} of {total} unhealthy ({value:g}%), "
                                    f"threshold {threshold}%: {verdict}",
                   gate=gate, value=value, threshold=threshold, unhealthy=count, total=total,
                   passed=passed)

    def whole_set_gate(self, code: str, *, record: bool = True) -> RunError | None:
        total = len(self.obs.instances)
        unhealthy = self.obs.unhealthy_count()
        percent = self.run.policy.max_unhealthy_instance_percent
        breached = policy_rules.exceeds(unhealthy, total, percent)
        if record or breached:
            self.gate_evaluated("maxUnhealthyInstancePercent", unhealthy, total, percent,
                                passed=not breached)
        if breached:
            return RunError(code, policy_rules.describe_unhealthy(
                unhealthy, total, percent, what="instances in the scale set"
            ) + " (maxUnhealthyInstancePercent)",
                "rollingUpgradePolicy.maxUnhealthyInstancePercent")
        return None

    # -- batches -------------------------------------------------------------
    def settle_batch(self, batch: Batch) -> None:
        """The open batch has settled: close it and apply the stop rules."""
        run = self.run
        self.run = run.replace(batches=(*run.batches[:-1], _close(batch, self.now)))
        self.event("BatchCompleted", f"batch {batch.index + 1} settled", batch=batch.index)
        upgraded = self.count(SETTLED_STEPS | {Step.ROLLING_BACK})
        # Unhealthy upgraded instances: every failed upgrade (rolled back or not), and
        # every instance that passed its health wait but is unhealthy again now.
        relapsed = sum(
            1 for ri in self.instances.values()
            if ri.step is Step.SUCCEEDED
            and (o := self.obs.instances.get(ri.instance_id)) is not None and not o.healthy
        )
        failed = self.count(FAILED_STEPS) + relapsed
        limit = run.policy.max_unhealthy_upgraded_instance_percent
        breached = policy_rules.exceeds(failed, upgraded, limit)
        if not run.all_at_once:
            self.gate_evaluated("maxUnhealthyUpgradedInstancePercent", failed, upgraded, limit,
                                passed=not breached)
        if not run.all_at_once and breached:
            error = RunError(UPGRADED_UNHEALTHY, policy_rules.describe_unhealthy(
                failed, upgraded, limit, what="upgraded instances"
            ) + " (maxUnhealthyUpgradedInstancePercent)",
                "rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent")
            to_restore = [ri for ri in self.instances.values() if ri.step is Step.FAILED]
            if run.rollback_on_breach and to_restore:
                self.run = self.run.with_status(RunStatus.ROLLING_BACK, error=error)
                self.event("RollingBack", f"{error.message}; restoring {len(to_restore)} "
                                          "failed instances")
                for ri in to_restore:
                    self.put(ri.to(Step.ROLLING_BACK))
                    self.actions.append(RollbackInstance(
                        rollback_op_id(run.run_id, ri.instance_id), ri.instance_id))
            else:
                self.finish(RunStatus.FAULTED, error)
            return
        if self.count(frozenset({Step.PENDING})) == 0:
            self.complete()  # nothing left to stop: a late cancel does not hide success
            return
        if run.cancel_requested:
            self.finish(RunStatus.CANCELLED)
            return
        if not run.all_at_once and (gate := self.whole_set_gate(IN_ROLLING_UPGRADE, record=False)):
            self.finish(RunStatus.FAULTED, gate)
            return
        self.run = self.run.replace(next_batch_at=self.now + run.policy.pause_time_between_batches)

    def complete(self) -> None:
        failed = self.count(FAILED_STEPS)
        if failed:
            self.finish(RunStatus.FAULTED, RunError(
                FINISHED_WITH_FAILURES,
                f"every batch ran, but {failed} upgraded instances failed and do not run the "
                f"target; see their instance views, fix the cause and start a new upgrade",
            ))
        else:
            self.finish(RunStatus.COMPLETED)

    def start_batch(self) -> None:
        run, obs = self.run, self.obs
        candidates: list[InstanceObservation] = []
        for ri in list(self.instances.values()):
            if ri.step is not Step.PENDING:
                continue
            observed = obs.instances.get(ri.instance_id)
            if observed is None:
                self.drop(ri.instance_id, "instance was deleted from the scale set")
            elif observed.protected:
                self.drop(ri.instance_id, "instance is protected from scale-set actions")
            elif run.kind is not RunKind.REIMAGE and on_target(observed, run.target):
                self.put(ri.to(Step.SUCCEEDED))
            else:
                candidates.append(observed)
        if not candidates:
            self.complete()
            return
        if not run.all_at_once:
            code = IN_ROLLING_UPGRADE if run.batches else BEFORE_ROLLING_UPGRADE
            # An update domain waiting for its cluster records the gate once, when it starts.
            if error := self.whole_set_gate(code, record=not run.policy.by_update_domain):
                self.finish(RunStatus.FAULTED, error)
                return
        if run.policy.by_update_domain and not run.all_at_once:
            if not self.cluster_gate():
                return
            self.whole_set_gate(IN_ROLLING_UPGRADE)
            chosen = policy_rules.update_domain_batch(candidates)
        elif not run.all_at_once:
            chosen = policy_rules.plan_batch(
                candidates, obs.instances,
                max_batch_instance_percent=run.policy.max_batch_instance_percent,
                prioritize_unhealthy=run.policy.prioritize_unhealthy_instances,
                cross_zone=run.policy.enable_cross_zone_upgrade,
            )
        else:
            chosen = [o.instance_id for o in candidates]
        index = len(run.batches)
        self.run = run.replace(batches=(*run.batches, Batch(index, tuple(chosen), self.now)),
                               next_batch_at=None)
        for iid in chosen:
            self.put(self.instances[iid].to(Step.UPGRADING, batch=index))
            self.actions.append(self._upgrade_action(iid))
        self.event("BatchStarted", f"batch {index + 1}: {len(chosen)} instances",
                   batch=index, instances=list(chosen))
        self.wake.append(self.now + run.policy.batch_timeout)  # look again if it never settles


    def cluster_gate(self) -> bool:
        """Whether the next update domain may start: the cluster reports healthy.

        Waiting is bounded by the health timeout, counted from when the batch
        became due; past it the run faults before touching another instance.
        """
        if self.obs.cluster_healthy is not False:
            return True
        due = self.run.next_batch_at or self.now
        limit = due + self.run.policy.health_timeout
        if self.now >= limit:
            unhealthy = sorted((o.instance_id for o in self.obs.instances.values()
                                if not o.healthy), key=policy_rules.natural_key)
            shown = ", ".join(unhealthy[:10]) or "nodes of other node types"
            self.finish(RunStatus.FAULTED, RunError(
                CLUSTER_UNHEALTHY,
                f"the Service Fabric cluster did not report healthy within "
                f"{_seconds(self.run.policy.health_timeout)} before update domain "
                f"{len(self.run.batches) + 1} (unhealthy nodes: {shown}); repair the "
                "cluster's nodes, then start the upgrade again"))
            return False
        self.wake.append(min(limit, self.now + CLUSTER_RECHECK))
        return False


def _close(batch: Batch, now: datetime) -> Batch:
    return Batch(batch.index, batch.instance_ids, batch.start, now)


def _seconds(delta: timedelta) -> str:
    """A wait as people say it.

    >>> _seconds(timedelta(minutes=5)), _seconds(timedelta(seconds=90)), _seconds(timedelta(0))
    ('5 min', '1 min 30 s', '0 s')
    """
    total = int(delta.total_seconds())
    minutes, seconds = divmod(total, 60)
    if minutes and seconds:
        return f"{minutes} min {seconds} s"
    return f"{minutes} min" if minutes else f"{seconds} s"


def decide(run: Run, observations: Observations, now: datetime) -> Decision:
    """One level-triggered pass over a run: the new run, the actions, and when to look again.

    Pure: reads only its arguments. Calling it again with the same inputs
    gives the same decision, and re-issues (under the same operation ids)
    any action the driver has not seen.
    """
    if run.status.is_terminal:
        return Decision(run)
    p = _Pass(run, observations, now)

    # Instances that left the scale set while in the run leave the run.
    for iid in [i for i in p.instances if i not in observations.instances]:
        p.drop(iid, "instance was deleted from the scale set")

    for ri in [ri for ri in p.instances.values() if ri.step in IN_FLIGHT_STEPS]:
        p.advance(ri)

    if p.run.status is RunStatus.ROLLING_BACK:
        if p.count(frozenset({Step.ROLLING_BACK})) == 0:
            p.finish(RunStatus.FAULTED)
    elif (batch := p.run.open_batch) is not None:
        members = [p.instances.get(iid) for iid in batch.instance_ids]
        deadline = batch.start + p.run.policy.batch_timeout
        if all(ri is None or ri.step in SETTLED_STEPS for ri in members):
            if (until := p.probes_pending()) is not None:
                p.wake.append(until)
            else:
                p.settle_batch(batch)
        elif now >= deadline:
            stuck = [ri.instance_id for ri in members
                     if ri is not None and ri.step not in SETTLED_STEPS]
            p.run = p.run.replace(batches=(*p.run.batches[:-1], _close(batch, now)))
            limit = _seconds(p.run.policy.batch_timeout)
            p.finish(RunStatus.FAULTED, RunError(
                TIMED_OUT,
                f"batch {batch.index + 1} did not finish within {limit}: instances "
                f"{', '.join(stuck)} are still being upgraded or rolled back; check them "
                "(boot diagnostics, the driver's log) and start a new upgrade"))
        else:
            p.wake.append(deadline)

    if p.run.status is RunStatus.ROLLING_FORWARD and p.run.open_batch is None:
        if p.run.cancel_requested:
            p.finish(RunStatus.CANCELLED)
        elif p.run.next_batch_at is not None and now >= p.run.next_batch_at:
            if (until := p.probes_pending()) is not None:
                p.wake.append(until)
            else:
                p.start_batch()
        elif p.run.next_batch_at is not None:
            p.wake.append(p.run.next_batch_at)

    # Nothing moved (the usual pass while an instance boots): the very same run, so the
    # shell knows there is nothing to write; re-issued actions keep their ids.
    still = p.run is run and not p.changed and not p.events
    final = run if still else p.run.replace(instances=p.instances)
    return Decision(
        run=final,
        actions=tuple(p.actions),
        changed=frozenset(p.changed),
        events=tuple(p.events),
        wake_at=min(p.wake) if p.wake and not final.status.is_terminal else None,
    )
