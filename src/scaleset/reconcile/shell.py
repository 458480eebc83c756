"""One level-triggered pass over one scale set: read -> observe -> plan -> commit -> act.

The order inside a pass is the crash-safety argument:

1. read the scale set, its instance records, its active run and the trigger's
   inputs in one transaction (the records and past runs come from the shell's
   own memory while the scale set's revision says nobody else wrote);
2. observe the driver;
3. plan the pass (``reconcile/plan.py``, pure): membership (instances to
   add and remove), records refreshed from the observation, power verbs, and
   the run's next step, all from what was read;
4. commit all of it in one transaction, guarded on the revision read in 1;
5. only then call the driver: delete and create instances, submit operations.

A crash anywhere loses at most step 5, and the next pass redoes it: a record
the driver does not have is created, an instance the store does not have is
deleted, and an operation the driver has not seen is asked for again under
the same id (``upgrade.run`` re-issues it). ``checkpoint(name)`` is called
between steps so tests can crash the shell at every one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scaleset.catalog.latest import Candidate
from scaleset.clock import Clock
from scaleset.drivers.base import (
    Driver,
    DriverInstance,
    DriverSnapshot,
    ProbeSpec,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.model.instance import HealthState, InstanceRecord
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, images, membership, probes, servicefabric
from scaleset.reconcile.plan import (
    DELETING,
    PassInputs,
    PassPlan,
    observations,
    plan_pass,
    run_id_for,
    run_policy,
)
from scaleset.reconcile.settings import ShellSettings
from scaleset.model.network import LoadBalancer
from scaleset.store.repository import CATALOG, ConflictError, ParseCache, ScaleSetRow, Store, Tx
from scaleset.upgrade.actions import (
    Action,
    Event,
    ReleasePreviousOsDisk,
    RollbackInstance,
    UpgradeInstance,
    upgrade_op_id,
)
from scaleset.upgrade.state import Policy, Run, RunKind, RunStatus

__all__ = ["DELETING", "Checkpoint", "PassResult", "Reconciler", "cluster_endpoint",
           "observations", "run_id_for", "run_policy"]

Checkpoint = Callable[[str], None]


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
    past_runs: tuple[Run, ...] | None
    """The scale set's runs, newest first (None: not read since the last run changed)."""
    seen: Mapping[str, DriverInstance]
    """The driver's instances as this pass saw them."""


@dataclass(frozen=True, slots=True)
class _Read:
    """What a pass read from the store in its one read transaction."""

    row: ScaleSetRow
    records: dict[str, InstanceRecord]
    run: Run | None
    trigger: automatic.TriggerInputs | None
    probe: ProbeSpec | None
    cluster_peers: tuple[str, ...]
    cached: _Cached | None
    """The shell's memory the records came from (None: read from the store)."""
    versions: Sequence[Candidate]
    """Every version of the scale set's image, as the catalog was read (their digests
    go with the instances the pass creates or upgrades)."""


def cluster_endpoint(model: ScaleSet) -> str | None:
    """The Service Fabric cluster a node type's extension joins (as ``servicefabric`` keys
    endpoints: the cluster id of an Azure-form URL), if any."""
    extension = model.service_fabric_extension
    if extension is None:
        return None
    return servicefabric.endpoint_key(
        str((extension.properties.settings or {}).get("clusterEndpoint") or ""))


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
        # (location, image) -> (catalog revision, candidates): "latest"'s inputs
        self._catalog: dict[tuple[str, ...], tuple[int, tuple[Candidate, ...]]] = {}
        # Models and load balancers validated once per stored text, not once per pass.
        self._models: ParseCache[ScaleSet] = ParseCache()
        self._balancers: ParseCache[LoadBalancer] = ParseCache()

    def known_revision(self, scale_set_id: str) -> int | None:
        """The scale set's revision as this shell last read or committed it (None: not
        known, its next pass reads it again)."""
        cached = self._cache.get(scale_set_id)
        return cached.revision if cached is not None else None

    # -- the pass ----------------------------------------------------------------
    def reconcile(self, scale_set_id: str) -> PassResult:
        """One pass over one scale set.

        If someone else wrote the scale set's instances or runs while this
        pass was deciding, nothing is committed and the result asks to look
        again at once (``conflict``).
        """
        try:
            result, acted = self._pass(scale_set_id)
            if acted:
                # Instances were created or deleted: what the driver did at once is
                # recorded (and decided on) by a second pass now, not a round later.
                result, _ = self._pass(scale_set_id, follow_up=True)
            return result
        except ConflictError:
            self._cache.pop(scale_set_id, None)
            return PassResult(wake_at=self.clock.now(), active_run_id=None, conflict=True)
        except BaseException:
            self._cache.pop(scale_set_id, None)  # what was committed is unknown: read it again
            raise

    def _read(self, scale_set_id: str) -> _Read | None:
        with self.store.transaction() as tx:
            row = tx.get_scale_set(scale_set_id, parsed=self._models)
            if row is None:
                self._cache.pop(scale_set_id, None)
                return None
            cached = self._cache.get(scale_set_id)
            if cached is not None and cached.revision == row.revision:
                records, run, past = cached.records, cached.run, cached.past_runs
            else:
                cached = None
                records, run, past = tx.instances(scale_set_id), tx.active_run(scale_set_id), None
            versions = self._versions(tx, row)
            trigger = automatic.trigger_inputs(
                tx, row, runs=past, candidates=versions if images.wants_latest(row.model)
                else None) if run is None else None
            network = row.model.properties.virtual_machine_profile.network_profile
            probe = probes.kept_probe_spec(tx, row.model, self._balancers) \
                if network is not None and network.health_probe is not None else None
            endpoint = cluster_endpoint(row.model)
            peers = tuple(
                other.id for other in tx.service_fabric_scale_sets() if other.id != row.id
                and cluster_endpoint(other.model) == endpoint) if endpoint is not None else ()
        return _Read(row, records, run, trigger, probe, peers, cached, versions)

    def _versions(self, tx: Tx, row: ScaleSetRow) -> Sequence[Candidate]:
        """Every version of the scale set's image, kept between passes while the catalog's
        revision holds."""
        ref = row.model.image_reference
        key = (row.location.lower(), (ref.publisher or "").lower(), (ref.offer or "").lower(),
               (ref.sku or "").lower(), (ref.id or "").lower())
        revision = tx.revision(CATALOG)
        kept = self._catalog.get(key)
        if kept is not None and kept[0] == revision:
            return kept[1]
        found = tuple(images.candidates(tx, row.location, row.model))
        self._catalog[key] = (revision, found)
        return found

    def _pass(self, scale_set_id: str, *, follow_up: bool = False) -> tuple[PassResult, bool]:
        """One pass; also whether it created or deleted instances."""
        now = self.clock.now()
        read = self._read(scale_set_id)
        if read is None:
            return PassResult(None, None), False
        self.checkpoint("read")
        row = read.row

        self.driver.configure_probe(row.id, read.probe)
        snapshot = self.driver.observe(scale_set_id, now)
        self.checkpoint("observed")

        plan = plan_pass(PassInputs(
            row=row, records=read.records, run=read.run, snapshot=snapshot, now=now,
            trigger=read.trigger, cluster_healthy=self._cluster_healthy(row, read, snapshot),
            watching_since=self.watching_since,
            seen=read.cached.seen if read.cached is not None else None,
            follow_up=follow_up), self.settings)

        revision = self._commit(read, plan, now)
        decision = plan.decision
        if plan.delete_scale_set:
            self._cache.pop(scale_set_id, None)
            return PassResult(None, None), False
        active = decision.run if decision is not None else read.run  # read.run: deletes first
        if active is not None and active.status.is_terminal:
            active = None
        past_runs = read.trigger.runs if read.trigger is not None and decision is None else None
        self._cache[scale_set_id] = _Cached(
            revision, plan.records, active,
            tuple(past_runs) if past_runs is not None else None, snapshot.instances)
        self.checkpoint("persisted")

        digest = self._digests(read.versions)
        for iid in plan.delete:  # deleted from the store, or an orphan of a crash
            self.driver.delete_instance(row.id, iid)
        for record in plan.create:
            self.driver.create_instance(membership.spec_for(
                record, row.model, image_digest=digest(record.image_version)))
        if plan.delete or plan.create:
            self.checkpoint("membership-acted")
        if decision is not None and decision.actions:
            provisioning = membership.provisioning(row.model)
            for action in decision.actions:
                self._act(row, action, provisioning, digest, plan.records)
                self.checkpoint("acted")
        for operation in plan.power.submit:
            self.driver.submit(operation)
            self.checkpoint("acted")

        run_left = decision.run if decision is not None else read.run
        if run_left is None or run_left.status.is_terminal:
            self._release_kept_disks(plan.records)
        wake = decision.wake_at if decision is not None else plan.trigger_wake
        if decision is not None and decision.run.status.is_terminal:
            wake = now  # a finished run may let the next one start: look again at once
        if plan.power.first_seen or plan.delete or plan.create:
            wake = now  # what the driver did at once is recorded by the next pass
        return PassResult(
            wake_at=wake,
            active_run_id=active.run_id if active else None,
            run_status=decision.run.status if decision is not None else None,
        ), bool(plan.delete or plan.create)

    def _commit(self, read: _Read, plan: PassPlan, now: datetime) -> int:
        """Write the plan in one transaction, guarded on the revision read; the revision the
        scale set has afterwards."""
        row = read.row
        noting = automatic.noting(row, plan.pending, self._pending_seen)
        if not plan.writes and not plan.delete_scale_set and not noting:
            return row.revision
        revision = row.revision
        with self.store.transaction() as tx:
            if plan.writes or plan.delete_scale_set:
                revision = tx.claim(row.id, row.revision)
            if plan.delete_scale_set:
                tx.delete_scale_set(row.id)
                return revision
            if plan.added or plan.removed:
                tx.insert_instances(plan.added)
                tx.delete_instances(row.id, plan.removed)
                tx.set_next_instance_id(row.id, plan.next_instance_id, now)
                tx.append_events(row.id, None, [
                    Event("InstanceCreated", "instance added to reach capacity", r.instance_id)
                    for r in plan.added] + [
                    Event("InstanceDeleted", "instance removed to reach capacity", iid)
                    for iid in plan.removed], now)
            tx.update_instance_changes(plan.changed)
            if noting:  # remembered only once committed
                memo = {k: v for k, v in self._pending_seen.items() if k == row.id}
                automatic.note(tx, row, plan.pending, now, memo)
            decision = plan.decision
            if decision is not None and plan.run_moved:
                run = decision.run
                if plan.new_run:
                    tx.insert_run(run, target_image_reference=self._image_reference(row, run))
                    tx.append_events(row.id, run.run_id, (Event(
                        "RunStarted",
                        f"{run.kind} run started by {run.started_by} towards "
                        f"image {run.target.image_version or '(unchanged)'}, "
                        f"generation {run.target.generation}: {len(run.instances)} instances",
                    ),), run.start_time)
                    tx.append_events(row.id, run.run_id, decision.events, now)
                    if run.status.is_terminal and run.error:
                        error = run.error
                        tx.append_events(row.id, run.run_id, (Event(
                            "RunFinished", f"run {run.status}: {error.code}: "
                                           f"{error.message}",
                            data={"status": str(run.status)}),), now)
                else:
                    assert read.run is not None
                    tx.save_decision(read.run, decision, now)
                self._on_run_end(tx, row, run, now)
        if noting:
            self._pending_seen.update(memo)
        return revision

    @staticmethod
    def _digests(versions: Sequence[Candidate]) -> Callable[[str | None], str | None]:
        """Image version -> artifact digest, from the versions the pass read."""
        found: dict[str, str | None] | None = None

        def digest(version: str | None) -> str | None:
            nonlocal found
            if version is None:
                return None
            if found is None:
                found = {c.version: c.digest for c in versions}
            return found.get(version)
        return digest

    def remove_orphans(self, scale_set_id: str) -> None:
        """Delete every instance the driver runs for a scale set the store does not have."""
        for iid in self.driver.observe(scale_set_id, self.clock.now()).instances:
            self.driver.delete_instance(scale_set_id, iid)

    def policy_for(self, row: ScaleSetRow) -> Policy:
        """The policy a new run of this scale set follows."""
        return run_policy(row.model, self.settings)

    def _cluster_healthy(self, row: ScaleSetRow, read: _Read, snapshot: DriverSnapshot
                         ) -> bool | None:
        """Service Fabric: every node of the cluster reports healthy (None: not a node type).

        A node's report is its instance's health, which counts the Service Fabric
        extension's. The nodes are this scale set's and those of every other scale
        set whose extension names the same cluster, all as the driver sees them now
        (a stored view of another node type could be a pass old).
        """
        if cluster_endpoint(row.model) is None:
            return None
        if any(i.health is not HealthState.HEALTHY for i in snapshot.instances.values()):
            return False
        now = self.clock.now()
        return all(i.health is HealthState.HEALTHY for other_id in read.cluster_peers
                   for i in self.driver.observe(other_id, now).instances.values())

    @staticmethod
    def _image_reference(row: ScaleSetRow, run: Run) -> dict[str, str] | None:
        return images.target_reference(row.model, run.target.image_version)

    def _on_run_end(self, tx: Tx, row: ScaleSetRow, run: Run, now: datetime) -> None:
        if run.status is RunStatus.COMPLETED and run.kind is RunKind.OS_IMAGE:
            tx.set_image_version(row.id, run.target.image_version, now)

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
