"""What one pass over a scale set does, decided from what it read: ``plan_pass``.

The shell (``reconcile/shell.py``) reads the scale set, its records, its run and
the trigger's inputs in one transaction, observes the driver, and hands all of
it here. The answer holds everything the pass then commits in one transaction
(membership changes, the records that changed, the run's new state, the
trigger's pending upgrade) and everything it does afterwards (instances to
create and delete, operations to submit). Nothing here reads the store, calls
the driver or looks at a clock, so a pass is a pure function of its inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from scaleset.drivers.base import DriverInstance, DriverSnapshot
from scaleset.model.instance import InstanceRecord
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, membership, power
from scaleset.reconcile.settings import ShellSettings
from scaleset.store.repository import ScaleSetRow
from scaleset.upgrade import run as run_machine
from scaleset.upgrade.actions import Decision
from scaleset.upgrade.observations import InstanceObservation, Observations
from scaleset.upgrade.state import Policy, Run, RunKind, RunStatus, StartedBy
from scaleset.upgrade.trigger import PendingUpgrade

DELETING = "Deleting"  # provisioningState of a scale set being deleted


@dataclass(frozen=True, slots=True)
class PassInputs:
    """Everything a pass decides on: one read of the store and one observation."""

    row: ScaleSetRow
    records: Mapping[str, InstanceRecord]
    run: Run | None
    snapshot: DriverSnapshot
    now: datetime
    trigger: automatic.TriggerInputs | None
    """Past runs and the ``latest`` candidate; None while a run is active."""
    cluster_healthy: bool | None = None
    watching_since: datetime | None = None
    seen: Mapping[str, DriverInstance] | None = None
    """The driver's instances as the previous pass saw them: an instance the driver
    reports as the very same object has not changed, so its record is not compared."""
    follow_up: bool = False
    """This pass follows one that created or deleted instances (``reconcile``): it decides
    whatever the driver shows, rather than wait for instances still being created."""


@dataclass(frozen=True, slots=True)
class PassPlan:
    """What to commit, then what to do."""

    records: dict[str, InstanceRecord]
    """The scale set's records after this pass (what the shell keeps until the next)."""
    added: tuple[InstanceRecord, ...]
    removed: tuple[str, ...]
    next_instance_id: int
    changed: tuple[tuple[InstanceRecord, InstanceRecord], ...]
    """``(stored, new)`` for every record the pass changes (added ones not included)."""
    power: power.PowerPlan
    decision: Decision | None
    """``decide``'s answer; ``decision.run is`` the run read when nothing in it moved."""
    new_run: bool
    pending: PendingUpgrade | None
    trigger_wake: datetime | None
    """When an automatic run that is not due yet becomes due (a delay, a window)."""
    create: tuple[InstanceRecord, ...]
    """Records the driver does not have: created after the commit."""
    delete: tuple[str, ...]
    """Instances the driver has and the store does not (or no longer): deleted after it."""
    delete_scale_set: bool
    """A scale set being deleted whose last instance is gone: remove it."""
    run: Run | None = None
    """The active run the pass read."""

    @property
    def writes(self) -> bool:
        """Whether the commit changes the scale set's records or runs."""
        return bool(self.added or self.removed or self.changed or self.run_moved)

    @property
    def run_moved(self) -> bool:
        """Whether the commit writes a run: a new one, or one ``decide`` moved."""
        return self.decision is not None and (self.new_run or self.decision.run is not self.run)


def run_id_for(scale_set_id: str, sequence: int) -> str:
    """Deterministic run ids, so a replayed simulation meets the same seeded faults."""
    return hashlib.sha1(f"{scale_set_id}/run/{sequence}".encode()).hexdigest()[:20]


def run_policy(model: ScaleSet, settings: ShellSettings) -> Policy:
    """The policy a new run of a scale set with this model follows."""
    return Policy.from_model(model.rolling_upgrade_policy, health_timeout=settings.health_timeout,
                             by_update_domain=model.service_fabric_extension is not None)


def refreshed(record: InstanceRecord, seen: DriverInstance) -> InstanceRecord:
    """The record updated with what the driver sees (the same object when nothing changed)."""
    if (
        record.health_state is seen.health
        and record.power_state is seen.power_state
        and record.provisioning_state is seen.provisioning_state
        and record.os_disk_id == seen.os_disk_id
        and record.previous_os_disk_id == seen.previous_os_disk_id
        and record.image_version == seen.image_version
        and record.model_generation == seen.generation
        and record.private_ip == seen.private_ip
        and record.extensions == seen.extensions
    ):
        return record  # the common case on a large fleet: skip building a new record
    previous_image = record.previous_image_version
    previous_generation = record.previous_model_generation
    if seen.previous_os_disk_id is None:
        previous_image, previous_generation = None, None
    elif seen.previous_os_disk_id != record.previous_os_disk_id:
        previous_image, previous_generation = record.image_version, record.model_generation
    # Built directly rather than with dataclasses.replace: this runs for every instance
    # whose observation changed, thousands a pass.
    return InstanceRecord(
        record.scale_set_id, record.instance_id, record.zone, record.fault_domain,
        record.update_domain, seen.generation, seen.image_version, seen.os_disk_id,
        seen.previous_os_disk_id, previous_image, previous_generation, record.data_disks,
        seen.power_state, seen.provisioning_state, seen.health,
        record.protect_from_scale_in, record.protect_from_scale_set_actions, seen.private_ip,
        seen.extensions, record.power_request, record.reset_data_disks_run)


def observations(records: Mapping[str, InstanceRecord], snapshot: DriverSnapshot,
                 cluster_healthy: bool | None = None, watching_since: datetime | None = None
                 ) -> Observations:
    """The core's view of the fleet: the store's placement and protection, the driver's state."""
    fleet: dict[str, InstanceObservation] = {}
    seen_all = snapshot.instances
    for iid, record in records.items():
        seen = seen_all.get(iid)
        if seen is None:
            continue  # not created yet (or lost): not part of the fleet until it exists
        fleet[iid] = InstanceObservation(iid, record.zone, record.update_domain, seen.health,
                                         seen.image_version, seen.generation,
                                         record.protect_from_scale_set_actions)
    return Observations(fleet, snapshot.operations, cluster_healthy, watching_since)


def _membership(inputs: PassInputs, settings: ShellSettings
                ) -> tuple[list[InstanceRecord], list[str], int]:
    row, records, run = inputs.row, inputs.records, inputs.run
    desired = row.model.capacity
    next_index = row.next_instance_id
    if len(records) < desired:
        image = row.image_version
        if run is not None and run.kind is RunKind.OS_IMAGE and \
                run.status is RunStatus.ROLLING_FORWARD:
            image = run.target.image_version  # scale-out during a run lands on its target
        added = []
        for _ in range(desired - len(records)):
            added.append(membership.new_instance(
                scale_set_id=row.id, name=row.name, model=row.model, index=next_index,
                generation=row.generation, image_version=image, settings=settings))
            next_index += 1
        return added, [], next_index
    if len(records) > desired:
        if row.model.properties.provisioning_state == DELETING:
            return [], list(records), next_index  # deleting overrides scale-in protection
        busy = frozenset(run.instances) if run is not None else frozenset()
        return [], membership.scale_in_victims(records, len(records) - desired, busy), next_index
    return [], [], next_index


def plan_pass(inputs: PassInputs, settings: ShellSettings) -> PassPlan:
    """Membership, refreshed records, power verbs and the run's next step, together."""
    row, now, snapshot = inputs.row, inputs.now, inputs.snapshot
    added, removed, next_index = _membership(inputs, settings)
    gone = frozenset(removed)
    seen_before = inputs.seen or {}
    instances = snapshot.instances

    records: dict[str, InstanceRecord] = {}
    changed: list[tuple[InstanceRecord, InstanceRecord]] = []
    run = inputs.run
    for iid, stored in inputs.records.items():
        if iid in gone:
            continue
        record = stored
        seen = instances.get(iid)
        if seen is not None and seen is not seen_before.get(iid):
            record = refreshed(stored, seen)
        if record.reset_data_disks_run is not None and (
                run is None or run.run_id != record.reset_data_disks_run):
            record = record.replace(reset_data_disks_run=None)
        records[iid] = record
    # The user's power verbs: outcomes of those the driver finished are committed with
    # everything else; the pending ones are (re)submitted after the commit.
    power_plan = power.plan(records, snapshot)
    for ended in power_plan.ended:
        records[ended.instance_id] = ended
    for iid, record in records.items():
        if record is not inputs.records[iid]:
            changed.append((inputs.records[iid], record))
    for record in added:
        records[record.instance_id] = record

    create = tuple(membership.ordered([r for r in records.values()
                                       if r.instance_id not in instances]))
    delete = tuple(iid for iid in instances if iid not in records)

    decision: Decision | None = None
    new_run = False
    pending: PendingUpgrade | None = None
    trigger_wake: datetime | None = None
    # While the driver still has instances the store has let go of, the next step waits
    # for them to be gone (the pass after the deletes): a run forgets an instance only
    # once it no longer exists, so a crash in between never leaves one it upgraded
    # running outside any run. Instances about to be created (a restarted driver that
    # lost its fleet, a scale-out) are waited for by one pass, so a run does not drop them
    # as deleted: the pass that follows the creates decides.
    if not delete and not (create and not inputs.follow_up):
        obs = observations(records, snapshot, inputs.cluster_healthy, inputs.watching_since)
        if run is not None:
            decision = run_machine.decide(run, obs, now)
        elif inputs.trigger is not None:
            started, pending, trigger_wake = _maybe_start(inputs, obs, settings)
            if started is not None:
                new_run = True
                decision = run_machine.decide(started, obs, now)
    deleting = row.model.properties.provisioning_state == DELETING
    return PassPlan(
        records=records, added=tuple(added), removed=tuple(removed), next_instance_id=next_index,
        changed=tuple(changed), power=power_plan, decision=decision, new_run=new_run,
        pending=pending, trigger_wake=trigger_wake, create=create, delete=delete,
        delete_scale_set=deleting and not records and not instances, run=run)


def _maybe_start(inputs: PassInputs, obs: Observations, settings: ShellSettings
                 ) -> tuple[Run | None, PendingUpgrade | None, datetime | None]:
    """The run the trigger starts now (and what is pending), else when to look again."""
    row, now = inputs.row, inputs.now
    assert inputs.trigger is not None
    assessed = automatic.decide(row, obs.instances, now, settings, inputs.trigger, active=None)
    pending = assessed.decision.pending
    run_id = run_id_for(row.id, len(assessed.runs) + 1)
    disable_rollback = row.model.automatic_os_upgrade.disable_automatic_rollback
    attempt = assessed.decision.failed_attempt
    if attempt is not None:
        # The set stayed over the gate for the whole health timeout: one failed
        # attempt in the history, from when it began to wait.
        waited = run_machine.start_run(
            run_id=run_id, scale_set_id=row.id, kind=RunKind.OS_IMAGE,
            started_by=StartedBy.PLATFORM, target=attempt.target,
            policy=run_policy(row.model, settings), fleet=obs.instances, now=attempt.waiting_since,
            disable_automatic_rollback=disable_rollback)
        return run_machine.never_started(waited, attempt.error(now), now), pending, None
    start = assessed.decision.start
    if start is None:
        return None, pending, assessed.decision.wake_at
    return run_machine.start_run(
        run_id=run_id, scale_set_id=row.id, kind=start.kind, started_by=StartedBy.PLATFORM,
        target=start.target, policy=run_policy(row.model, settings), fleet=obs.instances, now=now,
        disable_automatic_rollback=disable_rollback, all_at_once=start.all_at_once,
    ), pending, None
