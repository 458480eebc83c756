"""One level-triggered pass over one scale set: observe -> decide -> persist -> act.

The order inside a pass is the crash-safety argument:

1. read the scale set, its instance records and its active run (store);
2. observe the driver;
3. decide membership (create / delete instances) and the run's next step,
   using only what was read;
4. commit all of it in one transaction;
5. only then call the driver.

A crash anywhere loses at most step 5, and the next pass redoes it: a record
the driver does not have is created, an instance the store does not have is
deleted, and an operation the driver has not seen is asked for again under
the same id (``upgrade.run`` re-issues it). ``checkpoint(name)`` is called
between steps so tests can crash the shell at every one of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from scaleset.clock import Clock
from scaleset.drivers.base import (
    Driver,
    DriverInstance,
    DriverSnapshot,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.model.instance import HealthState, InstanceRecord
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, images, membership, power, probes, servicefabric
from scaleset.reconcile.settings import ShellSettings
from scaleset.store.repository import ConflictError, ScaleSetRow, Store, Tx
from scaleset.upgrade import run as run_machine
from scaleset.upgrade.actions import (
    Action,
    Decision,
    Event,
    ReleasePreviousOsDisk,
    RollbackInstance,
    UpgradeInstance,
    upgrade_op_id,
)
from scaleset.upgrade.observations import InstanceObservation, Observations
from scaleset.upgrade.state import Policy, Run, RunKind, RunStatus, StartedBy

Checkpoint = Callable[[str], None]
DELETING = "Deleting"  # provisioningState of a scale set being deleted


def _no_checkpoint(step: str) -> None:
    """The production checkpoint: nothing happens between steps."""


@dataclass(frozen=True, slots=True)
class PassResult:
    """How a pass ended: when to look again, and whether a run is still active."""

    wake_at: datetime | None
    active_run_id: str | None
    run_status: RunStatus | None = None
    conflict: bool = False
    """Someone else wrote while the pass decided; nothing was committed, look again."""


@dataclass(frozen=True, slots=True)
class _Cached:
    """What the shell last committed for a scale set, valid while its revision holds."""

    revision: int
    records: dict[str, InstanceRecord]
    run: Run | None


def run_id_for(scale_set_id: str, sequence: int) -> str:
    """Deterministic run ids, so a replayed simulation meets the same seeded faults."""
    return hashlib.sha1(f"{scale_set_id}/run/{sequence}".encode()).hexdigest()[:20]


def observations(records: Mapping[str, InstanceRecord], snapshot: DriverSnapshot,
                 cluster_healthy: bool | None = None, watching_since: datetime | None = None
                 ) -> Observations:
    """The core's view of the fleet: the store's placement and protection, the driver's state."""
    fleet: dict[str, InstanceObservation] = {}
    for iid, record in records.items():
        seen = snapshot.instances.get(iid)
        if seen is None:
            continue  # not created yet (or lost): not part of the fleet until it exists
        fleet[iid] = InstanceObservation(
            instance_id=iid,
            zone=record.zone,
            update_domain=record.update_domain,
            health=seen.health,
            image_version=seen.image_version,
            generation=seen.generation,
            protected=record.protect_from_scale_set_actions,
        )
    return Observations(fleet, snapshot.operations, cluster_healthy, watching_since)


def run_policy(model: ScaleSet, settings: ShellSettings) -> Policy:
    """The policy a new run of a scale set with this model follows."""
    return Policy.from_model(model.rolling_upgrade_policy, health_timeout=settings.health_timeout,
                             by_update_domain=model.service_fabric_extension is not None)


def cluster_endpoint(model: ScaleSet) -> str | None:
    """The Service Fabric cluster a node type's extension joins (as ``servicefabric`` keys
    endpoints: the cluster id of an Azure-form URL), if any."""
    extension = model.service_fabric_extension
    if extension is None:
        return None
    return servicefabric.endpoint_key(
        str((extension.properties.settings or {}).get("clusterEndpoint") or ""))


def _refreshed(record: InstanceRecord, seen: DriverInstance) -> InstanceRecord:
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
    return record.replace(
        image_version=seen.image_version,
        model_generation=seen.generation,
        os_disk_id=seen.os_disk_id,
        previous_os_disk_id=seen.previous_os_disk_id,
        previous_image_version=previous_image,
        previous_model_generation=previous_generation,
        power_state=seen.power_state,
        provisioning_state=seen.provisioning_state,
        health_state=seen.health,
        private_ip=seen.private_ip,
        extensions=seen.extensions,
    )


class Reconciler:
    """Drives every scale set in a store towards its model, one pass at a time.

    >>> # reconciler = Reconciler(store=store, driver=driver, clock=clock)
    >>> # reconciler.reconcile(scale_set_id).wake_at
    """

    def __init__(
        self,
        *,
        store: Store,
        driver: Driver,
        clock: Clock,
        settings: ShellSettings | None = None,
        checkpoint: Checkpoint = _no_checkpoint,
        watching_since: datetime | None = None,
    ) -> None:
        """``watching_since``: when this control plane started (``Observations``); None in
        virtual-time runs, where a restart loses no observation time."""
        self.store = store
        self.driver = driver
        self.clock = clock
        self.settings = settings or ShellSettings()
        self.checkpoint = checkpoint
        self.watching_since = watching_since
        self._cache: dict[str, _Cached] = {}
        self._pending_seen: dict[str, tuple[str, str]] = {}  # what automatic.note recorded

    # -- the pass ----------------------------------------------------------------
    def reconcile(self, scale_set_id: str) -> PassResult:
        """One pass over one scale set.

        If someone else wrote the scale set's instances or runs while this
        pass was deciding, nothing is committed and the result asks to look
        again at once (``conflict``).
        """
        try:
            return self._pass(scale_set_id)
        except ConflictError:
            self._cache.pop(scale_set_id, None)
            return PassResult(wake_at=self.clock.now(), active_run_id=None, conflict=True)

    def _load(self, scale_set_id: str) -> tuple[ScaleSetRow | None,
                                                 dict[str, InstanceRecord], Run | None]:
        with self.store.transaction() as tx:
            row = tx.get_scale_set(scale_set_id)
            if row is None:
                self._cache.pop(scale_set_id, None)
                return None, {}, None
            cached = self._cache.get(scale_set_id)
            if cached is not None and cached.revision == row.revision:
                return row, cached.records, cached.run  # nobody wrote since our last pass
            return row, tx.instances(scale_set_id), tx.active_run(scale_set_id)

    def _pass(self, scale_set_id: str) -> PassResult:
        now = self.clock.now()
        row, records, run = self._load(scale_set_id)
        if row is None:
            return PassResult(None, None)
        self.checkpoint("read")

        self._configure_probe(row)
        snapshot = self.driver.observe(scale_set_id, now)
        self.checkpoint("observed")

        row, records, snapshot = self._converge_membership(row, records, run, snapshot, now)
        if row.model.properties.provisioning_state == DELETING and not records \
                and not snapshot.instances:
            with self.store.transaction() as tx:
                tx.claim(scale_set_id, row.revision)
                tx.delete_scale_set(scale_set_id)
            self._cache.pop(scale_set_id, None)
            return PassResult(None, None)

        refreshed = {
            iid: _refreshed(r, snapshot.instances[iid]) if iid in snapshot.instances else r
            for iid, r in records.items()
        }
        # The user's power verbs: outcomes of those the driver finished are committed
        # with everything else; the pending ones are (re)submitted after the commit.
        power_plan = power.plan(refreshed, snapshot)
        refreshed.update({r.instance_id: r for r in power_plan.ended})
        refreshed.update({iid: r.replace(reset_data_disks_run=None)
                          for iid, r in refreshed.items()
                          if r.reset_data_disks_run is not None
                          and (run is None or run.run_id != r.reset_data_disks_run)})
        changed_records = [r for iid, r in refreshed.items() if r is not records[iid]]
        obs = observations(refreshed, snapshot, self._cluster_healthy(row, snapshot),
                           self.watching_since)

        decision: Decision | None = None
        new_run = False
        trigger_wake: datetime | None = None  # an automatic run that is not due yet
        if run is not None:
            decision = run_machine.decide(run, obs, now)
        else:
            started, trigger_wake = self._maybe_start(tx_row=row, obs=obs, now=now)
            if started is not None:
                new_run = True
                run = started
                decision = run_machine.decide(started, obs, now)

        revision = row.revision
        if changed_records or decision is not None:
            with self.store.transaction() as tx:
                revision = tx.claim(scale_set_id, row.revision)
                tx.update_instances(changed_records)
                if decision is not None and run is not None:
                    if new_run:
                        tx.insert_run(decision.run, target_image_reference=self._image_reference(
                            row, decision.run))
                        tx.append_events(scale_set_id, run.run_id, (Event(
                            "RunStarted",
                            f"{run.kind} run started by {run.started_by} towards "
                            f"image {run.target.image_version or '(unchanged)'}, "
                            f"generation {run.target.generation}: {len(run.instances)} instances",
                        ),), run.start_time)
                        tx.append_events(scale_set_id, run.run_id, decision.events, now)
                        if decision.run.status.is_terminal and decision.run.error:
                            error = decision.run.error
                            tx.append_events(scale_set_id, run.run_id, (Event(
                                "RunFinished", f"run {decision.run.status}: {error.code}: "
                                               f"{error.message}",
                                data={"status": str(decision.run.status)}),), now)
                    else:
                        tx.save_decision(run, decision, now)
                    self._on_run_end(tx, row, decision.run, now)
        active = decision.run if decision is not None else None
        if active is not None and active.status.is_terminal:
            active = None
        self._cache[scale_set_id] = _Cached(revision, refreshed, active)
        self.checkpoint("persisted")

        if decision is not None and decision.actions:
            provisioning = membership.provisioning(row.model)
            digest = self._digests(row)
            for action in decision.actions:
                self._act(row, action, provisioning, digest, refreshed)
                self.checkpoint("acted")
        for operation in power_plan.submit:
            self.driver.submit(operation)
            self.checkpoint("acted")

        if active is None:
            self._release_kept_disks(refreshed)
        wake = decision.wake_at if decision is not None else trigger_wake
        if decision is not None and decision.run.status.is_terminal:
            wake = now  # a finished run may let the next one start: look again at once
        if power_plan.first_seen:
            wake = now  # a verb the driver finished at once is recorded by the next pass
        return PassResult(
            wake_at=wake,
            active_run_id=active.run_id if active else None,
            run_status=decision.run.status if decision is not None else None,
        )

    def _configure_probe(self, row: ScaleSetRow) -> None:
        network = row.model.properties.virtual_machine_profile.network_profile
        if network is None or network.health_probe is None:
            self.driver.configure_probe(row.id, None)
            return
        with self.store.transaction() as tx:
            self.driver.configure_probe(row.id, probes.probe_spec(tx, row.model))

    def _digests(self, row: ScaleSetRow) -> Callable[[str | None], str | None]:
        """Image version -> artifact digest for the scale set's image (looked up once)."""
        found: dict[str, str | None] | None = None

        def digest(version: str | None) -> str | None:
            nonlocal found
            if version is None:
                return None
            if found is None:
                with self.store.transaction() as tx:
                    found = images.digests(tx, row.location, row.model)
            return found.get(version)
        return digest

    def remove_orphans(self, scale_set_id: str) -> None:
        """Delete every instance the driver runs for a scale set the store does not have."""
        for iid in self.driver.observe(scale_set_id, self.clock.now()).instances:
            self.driver.delete_instance(scale_set_id, iid)

    # -- membership --------------------------------------------------------------
    def _converge_membership(
        self,
        row: ScaleSetRow,
        records: dict[str, InstanceRecord],
        run: Run | None,
        snapshot: DriverSnapshot,
        now: datetime,
    ) -> tuple[ScaleSetRow, dict[str, InstanceRecord], DriverSnapshot]:
        desired = row.model.capacity
        added: list[InstanceRecord] = []
        removed: list[str] = []
        next_index = row.next_instance_id
        if len(records) < desired:
            image = row.image_version
            if run is not None and run.kind is RunKind.OS_IMAGE and \
                    run.status is RunStatus.ROLLING_FORWARD:
                image = run.target.image_version  # scale-out during a run lands on its target
            for _ in range(desired - len(records)):
                added.append(membership.new_instance(
                    scale_set_id=row.id, name=row.name, model=row.model, index=next_index,
                    generation=row.generation, image_version=image, settings=self.settings))
                next_index += 1
        elif len(records) > desired:
            busy = frozenset(run.instances) if run is not None else frozenset()
            if row.model.properties.provisioning_state == DELETING:
                removed = list(records)  # deleting the scale set overrides scale-in protection
            else:
                removed = membership.scale_in_victims(records, len(records) - desired, busy)
        if added or removed:
            with self.store.transaction() as tx:
                revision = tx.claim(row.id, row.revision)
                row = row.replace(next_instance_id=next_index, updated_at=now, revision=revision)
                tx.insert_instances(added)
                tx.delete_instances(row.id, removed)
                tx.update_scale_set(row)
                tx.append_events(row.id, None, [
                    Event("InstanceCreated", "instance added to reach capacity", r.instance_id)
                    for r in added] + [
                    Event("InstanceDeleted", "instance removed to reach capacity", iid)
                    for iid in removed], now)
            self.checkpoint("membership-persisted")
            records = {**records, **{r.instance_id: r for r in added}}
            for iid in removed:
                records.pop(iid, None)

        touched = False
        for iid in snapshot.instances:
            if iid not in records:  # deleted from the store, or an orphan of a crash
                self.driver.delete_instance(row.id, iid)
                touched = True
        digest = self._digests(row)
        for iid, record in membership_order(records):
            if iid not in snapshot.instances:
                self.driver.create_instance(membership.spec_for(
                    record, row.model, image_digest=digest(record.image_version)))
                touched = True
        if touched:
            self.checkpoint("membership-acted")
            snapshot = self.driver.observe(row.id, now)
        return row, records, snapshot

    # -- runs --------------------------------------------------------------------
    def _maybe_start(self, *, tx_row: ScaleSetRow, obs: Observations, now: datetime
                     ) -> tuple[Run | None, datetime | None]:
        """The run the trigger starts now, else when to look again (a delay ends, a
        maintenance window opens)."""
        row = tx_row
        with self.store.transaction() as tx:
            assessed = automatic.assess(tx, row, obs.instances, now, self.settings, active=None)
            automatic.note(tx, row, assessed.decision.pending, now, self._pending_seen)
        model = row.model
        run_id = run_id_for(row.id, len(assessed.runs) + 1)
        disable_rollback = model.automatic_os_upgrade.disable_automatic_rollback
        attempt = assessed.decision.failed_attempt
        if attempt is not None:
            # The set stayed over the gate for the whole health timeout: one failed
            # attempt in the history, from when it began to wait.
            waited = run_machine.start_run(
                run_id=run_id, scale_set_id=row.id, kind=RunKind.OS_IMAGE,
                started_by=StartedBy.PLATFORM, target=attempt.target,
                policy=self.policy_for(row), fleet=obs.instances, now=attempt.waiting_since,
                disable_automatic_rollback=disable_rollback)
            return run_machine.never_started(waited, attempt.error(now), now), None
        start = assessed.decision.start
        if start is None:
            return None, assessed.decision.wake_at
        return run_machine.start_run(
            run_id=run_id,
            scale_set_id=row.id,
            kind=start.kind,
            started_by=StartedBy.PLATFORM,
            target=start.target,
            policy=self.policy_for(row),
            fleet=obs.instances,
            now=now,
            disable_automatic_rollback=disable_rollback,
            all_at_once=start.all_at_once,
        ), None

    def policy_for(self, row: ScaleSetRow) -> Policy:
        """The policy a new run of this scale set follows."""
        return run_policy(row.model, self.settings)

    def _cluster_healthy(self, row: ScaleSetRow, snapshot: DriverSnapshot) -> bool | None:
        """Service Fabric: every node of the cluster reports healthy (None: not a node type).

        A node's report is its instance's health, which counts the Service Fabric
        extension's. The nodes are this scale set's and those of every other scale
        set whose extension names the same cluster, all as the driver sees them now
        (a stored view of another node type could be a pass old).
        """
        endpoint = cluster_endpoint(row.model)
        if endpoint is None:
            return None
        if any(i.health is not HealthState.HEALTHY for i in snapshot.instances.values()):
            return False
        with self.store.transaction() as tx:
            others = [other_id for other_id in tx.scale_set_ids() if other_id != row.id
                      and (other := tx.get_scale_set(other_id)) is not None
                      and cluster_endpoint(other.model) == endpoint]
        now = self.clock.now()
        return all(i.health is HealthState.HEALTHY for other_id in others
                   for i in self.driver.observe(other_id, now).instances.values())

    @staticmethod
    def _image_reference(row: ScaleSetRow, run: Run) -> dict[str, str] | None:
        return images.target_reference(row.model, run.target.image_version)

    def _on_run_end(self, tx: Tx, row: ScaleSetRow, run: Run, now: datetime) -> None:
        if run.status is RunStatus.COMPLETED and run.kind is RunKind.OS_IMAGE:
            fresh = tx.get_scale_set(row.id)
            if fresh is not None:
                tx.update_scale_set(fresh.replace(image_version=run.target.image_version,
                                                  updated_at=now))

    # -- acting ------------------------------------------------------------------
    def _act(self, row: ScaleSetRow, action: Action, provisioning: membership.Provisioning,
             digest: Callable[[str | None], str | None],
             records: Mapping[str, InstanceRecord] | None = None) -> None:
        match action:
            case UpgradeInstance(op_id=op_id, instance_id=iid, image_version=image,
                                 generation=generation):
                record = (records or {}).get(iid)
                # reimageall: this run's new OS disk comes with empty data disks.
                reset = record is not None and record.reset_data_disks_run is not None \
                    and op_id == upgrade_op_id(record.reset_data_disks_run, iid)
                self.driver.submit(UpgradeOperation(
                    op_id, row.id, iid, image, generation,
                    os_disk_id=membership.os_disk_id(row.name, iid, op_id),
                    extensions=provisioning.extensions, custom_data=provisioning.custom_data,
                    health_source=provisioning.health_source, image_digest=digest(image),
                    reset_data_disks=reset))
            case RollbackInstance(op_id=op_id, instance_id=iid):
                self.driver.submit(RollbackOperation(op_id, row.id, iid))
            case ReleasePreviousOsDisk(instance_id=iid):
                self.driver.submit(ReleaseOperation(row.id, iid))

    def _release_kept_disks(self, records: Mapping[str, InstanceRecord]) -> None:
        # Level-triggered clean-up: with no run that may still roll back, a kept
        # OS disk is garbage (this also covers a crash between persist and act).
        for record in records.values():
            if record.previous_os_disk_id is not None:
                self.driver.submit(ReleaseOperation(record.scale_set_id, record.instance_id))


def membership_order(records: Mapping[str, InstanceRecord]) -> list[tuple[str, InstanceRecord]]:
    return [(r.instance_id, r) for r in membership.ordered(list(records.values()))]
