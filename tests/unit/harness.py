"""A pure-core harness: ``decide`` against a simulated driver on a virtual clock, no store.

    h = Harness.build(10, policy=Policy(), started_by=StartedBy.PLATFORM)
    run = h.run_to_end()            # passes until the run is terminal
    h.passes                        # every pass: the time, what was observed, the decision

Each pass observes the driver, builds ``Observations`` from the snapshot plus
the harness's own placement table (zone, update domain, protection), calls
``decide``, checks the invariants that must hold at every pass, submits the
actions to the driver, then jumps the clock to the earliest of the
decision's ``wake_at`` and the driver's next event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from scaleset.clock import EPOCH, VirtualClock
from scaleset.drivers.base import (
    DataDiskSpec,
    InstanceSpec,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.drivers.simulated import Faults, SimulatedDriver, Timings
from scaleset.model.instance import HealthState
from scaleset.upgrade import policy as rules
from scaleset.upgrade.actions import (
    Action,
    Decision,
    ReleasePreviousOsDisk,
    RollbackInstance,
    UpgradeInstance,
)
from scaleset.upgrade.observations import InstanceObservation, Observations
from scaleset.upgrade.run import decide, request_cancel, start_run
from scaleset.upgrade.state import (
    FAILED_STEPS,
    IN_FLIGHT_STEPS,
    LEGAL_TRANSITIONS,
    STEP_TRANSITIONS,
    Policy,
    Run,
    RunKind,
    RunStatus,
    StartedBy,
    Step,
    Target,
)

A = TypeVar("A", UpgradeInstance, RollbackInstance, ReleasePreviousOsDisk)

SID = "/subscriptions/0/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/ss"
OLD = "1.0.0"
NEW = "1.1.0"
GENERATION = 1


class Stuck(AssertionError):
    """The run is not finished, yet nothing can change any more (or the pass bound was hit)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """What the store would know about an instance: where it is and whether it is protected."""

    zone: str | None = None
    update_domain: int = 0
    protected: bool = False


@dataclass(frozen=True)
class Pass:
    """One ``decide`` pass as the harness saw it."""

    now: datetime
    before: Run
    observations: Observations
    decision: Decision
    submitted: tuple[Action, ...]

    @property
    def after(self) -> Run:
        return self.decision.run

    def events(self, kind: str) -> list[object]:
        return [e for e in self.decision.events if e.kind == kind]

    @property
    def started_batch(self) -> bool:
        return any(e.kind == "BatchStarted" for e in self.decision.events)


# Loses (does not submit) some of a pass's actions: (pass index, action) -> lose it?
Loss = Callable[[int, Action], bool]


@dataclass
class Harness:
    clock: VirtualClock
    driver: SimulatedDriver
    placement: dict[str, Placement]
    run: Run
    data_disks_before: dict[str, dict[int, str]]
    check: bool = True
    lose: Loss | None = None
    passes: list[Pass] = field(default_factory=list)
    breached: bool = False  # a settled batch breached maxUnhealthyUpgradedInstancePercent
    freeze_operations: bool = False  # copy the driver's (live) operation view at each pass
    cluster: Callable[[datetime, Mapping[str, InstanceObservation]], bool] | None = None
    """Service Fabric: the cluster's reported health at a time, given the fleet (None: none)."""

    # -- construction -----------------------------------------------------------
    @classmethod
    def build(
        cls,
        instances: int | Mapping[str, Placement],
        *,
        policy: Policy | None = None,
        started_by: StartedBy = StartedBy.PLATFORM,
        disable_automatic_rollback: bool = False,
        timings: Timings | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        bad_images: Iterable[str] = (),
        target: str = NEW,
    ) -> Harness:
        """A fleet on ``OLD`` and a fresh run towards ``target``.

        ``instances`` is a count (ids "0".."n-1", update domain ``i % 5``, no
        zone) or an explicit placement table.
        """
        if isinstance(instances, int):
            placement = {str(i): Placement(update_domain=i % 5) for i in range(instances)}
        else:
            placement = dict(instances)
        clock = VirtualClock(EPOCH)
        driver = SimulatedDriver(start=clock.now(), timings=timings, faults=faults, seed=seed,
                                 bad_images=frozenset(bad_images))
        for iid, where in placement.items():
            driver.create_instance(InstanceSpec(
                scale_set_id=SID, instance_id=iid, image_version=OLD, generation=GENERATION,
                os_disk_id=f"{iid}-os-0",
                data_disks=(DataDiskSpec(0, f"{iid}-data-0", 32),
                            DataDiskSpec(1, f"{iid}-data-1", 64)),
                zone=where.zone,
            ))
        data = {iid: driver.data_disks(SID, iid) for iid in placement}
        h = cls(clock, driver, placement, run=None, data_disks_before=data)  # type: ignore[arg-type]
        h.run = start_run(
            run_id="run-1", scale_set_id=SID, kind=RunKind.OS_IMAGE, started_by=started_by,
            target=Target(target, GENERATION), policy=policy or Policy(),
            fleet=h.observe().instances, now=clock.now(),
            disable_automatic_rollback=disable_automatic_rollback,
        )
        return h

    # -- observing and acting -----------------------------------------------------
    def observe(self) -> Observations:
        snapshot = self.driver.observe(SID, self.clock.now())
        fleet: dict[str, InstanceObservation] = {}
        for iid, seen in snapshot.instances.items():
            where = self.placement[iid]
            fleet[iid] = InstanceObservation(
                instance_id=iid, zone=where.zone, update_domain=where.update_domain,
                health=seen.health, image_version=seen.image_version,
                generation=seen.generation, protected=where.protected,
            )
        ops = dict(snapshot.operations) if self.freeze_operations else snapshot.operations
        cluster = None if self.cluster is None else self.cluster(self.clock.now(), fleet)
        return Observations(fleet, ops, cluster)

    def submit(self, action: Action) -> None:
        match action:
            case UpgradeInstance(op_id=op_id, instance_id=iid, image_version=image,
                                 generation=generation):
                self.driver.submit(UpgradeOperation(op_id, SID, iid, image, generation,
                                                    os_disk_id=f"{iid}-os-{op_id}"))
            case RollbackInstance(op_id=op_id, instance_id=iid):
                self.driver.submit(RollbackOperation(op_id, SID, iid))
            case ReleasePreviousOsDisk(instance_id=iid):
                self.driver.submit(ReleaseOperation(SID, iid))

    def cancel(self) -> None:
        self.run = request_cancel(self.run, self.clock.now())

    # -- the loop -----------------------------------------------------------------
    def step(self) -> Pass:
        """One pass at the current instant: observe, decide, check, act."""
        now = self.clock.now()
        obs = self.observe()
        before = self.run
        decision = decide(before, obs, now)
        index = len(self.passes)
        submitted = []
        for action in decision.actions:
            if self.lose is not None and self.lose(index, action):
                continue
            self.submit(action)
            submitted.append(action)
        record = Pass(now, before, obs, decision, tuple(submitted))
        if self.check:
            check_pass(record, breached_before=self.breached)
        if record.events("BatchCompleted") and upgraded_unhealthy_breached(record.after):
            self.breached = True
        self.passes.append(record)
        self.run = decision.run
        return record

    def next_instant(self, last: Pass) -> datetime | None:
        candidates = [t for t in (last.decision.wake_at, self.driver.next_event_time())
                      if t is not None]
        return max(min(candidates), self.clock.now()) if candidates else None

    def run_until(self, done: Callable[[Harness], bool], *, max_passes: int = 100_000,
                  horizon: timedelta = timedelta(days=30)) -> Run:
        """Passes until ``done(self)`` (checked after every pass) or the run is terminal."""
        idle = False
        for _ in range(max_passes):
            last = self.step()
            if done(self) or self.run.status.is_terminal:
                return self.run
            if len(last.submitted) < len(last.decision.actions) and not idle:
                # Actions were lost: a real shell's periodic resync looks again within a
                # second, long before the next deadline. One immediate extra pass.
                idle = True
                continue
            nxt = self.next_instant(last)
            if nxt is None:
                # Nothing scheduled: a real shell would still look again (a resync). One
                # extra pass lets decide re-issue what was lost; a second idle one is a hang.
                if idle:
                    raise Stuck(f"run {self.run.status} but nothing can change any more")
                idle = True
                continue
            idle = False
            if nxt - EPOCH > horizon:
                raise Stuck(f"run not finished within {horizon} of virtual time")
            self.clock.advance_to(nxt)
        raise Stuck(f"run not finished within {max_passes} passes")

    def run_to_end(self, **kwargs: object) -> Run:
        run = self.run_until(lambda h: False, **kwargs)  # type: ignore[arg-type]
        if self.check:
            check_end(self)
        return run

    # -- inspection ---------------------------------------------------------------
    def image(self, iid: str) -> str | None:
        return self.driver.observe(SID, self.clock.now()).instances[iid].image_version

    def reimages(self, iid: str) -> int:
        return self.driver.reimage_count(SID, iid)

    def rollbacks(self, iid: str) -> int:
        return self.driver.rollback_count(SID, iid)

    def actions(self, kind: type[A]) -> list[A]:
        """Every action of ``kind`` decide emitted (submitted or lost), in order."""
        return [a for p in self.passes for a in p.decision.actions if isinstance(a, kind)]

    def batch_sizes(self) -> list[int]:
        return [len(b.instance_ids) for b in self.run.batches]

    def statuses(self) -> list[RunStatus]:
        """The run's statuses in the order it went through them."""
        seen = [self.passes[0].before.status] if self.passes else [self.run.status]
        for p in self.passes:
            if p.after.status != seen[-1]:
                seen.append(p.after.status)
        return seen

    def first_time(self, predicate: Callable[[Pass], bool]) -> datetime:
        for p in self.passes:
            if predicate(p):
                return p.now
        raise AssertionError("no pass matched")


# -- invariants ---------------------------------------------------------------------
def unhealthy(obs: Observations, among: Iterable[str] | None = None) -> int:
    ids = obs.instances if among is None else among
    return sum(1 for iid in ids if obs.instances[iid].health is not HealthState.HEALTHY)


def upgraded_unhealthy_breached(run: Run) -> bool:
    """Whether more than maxUnhealthyUpgradedInstancePercent of the instances of the
    closed batches failed (counted independently of ``run.py``)."""
    closed = {b.index for b in run.batches if b.end is not None}
    upgraded = [ri for ri in run.instances.values() if ri.batch in closed]
    failed = sum(1 for ri in upgraded if ri.step in FAILED_STEPS)
    return rules.exceeds(failed, len(upgraded), run.policy.max_unhealthy_upgraded_instance_percent)


def check_pass(p: Pass, *, breached_before: bool = False) -> None:
    """What must hold after every pass, whatever the fleet, policy and faults."""
    before, after, obs = p.before, p.after, p.observations
    # The run moves only along the legal edges.
    if after.status != before.status:
        assert after.status in LEGAL_TRANSITIONS[before.status], (before.status, after.status)
    # Each instance moves only along the legal step edges (one edge, or two within a pass
    # when an upgrade both finishes and its health is already decided).
    for iid, ri in after.instances.items():
        old = before.instances.get(iid)
        assert old is not None, f"instance {iid} joined the run mid-way"
        if ri.step != old.step:
            one = ri.step in STEP_TRANSITIONS[old.step]
            two = any(ri.step in STEP_TRANSITIONS[mid] for mid in STEP_TRANSITIONS[old.step])
            assert one or two, (iid, old.step, ri.step)
    # Progress always accounts for every instance in the run.
    progress = after.progress()
    assert progress.total == len(after.instances)
    assert progress.rolled_back + progress.rollback_failed <= progress.failed
    # Protected instances are never touched.
    for a in p.decision.actions:
        if isinstance(a, UpgradeInstance | RollbackInstance):
            assert not obs.instances[a.instance_id].protected, a
    # A User OS run never restores a previous OS disk.
    if after.started_by is StartedBy.USER and after.kind is RunKind.OS_IMAGE:
        assert not any(isinstance(a, RollbackInstance) for a in p.decision.actions)
    # Batch starts.
    if p.started_batch:
        assert not before.status.is_terminal
        assert not breached_before, "a batch started after the upgraded-unhealthy breach"
        batch = after.batches[-1]
        assert batch.end is None and batch.start == p.now and batch.instance_ids
        total = len(obs.instances)
        gate = after.policy.max_unhealthy_instance_percent
        assert not rules.exceeds(unhealthy(obs), total, gate), \
            "a batch started while the scale set was over maxUnhealthyInstancePercent"
        size = len(batch.instance_ids)
        outside = unhealthy(obs, [i for i in obs.instances if i not in batch.instance_ids])
        limit = rules.batch_limit(total, after.policy.max_batch_instance_percent)
        if after.policy.by_update_domain:
            # Service Fabric: one whole update domain, only on a healthy cluster.
            assert obs.cluster_healthy is not False, "a domain started on an unhealthy cluster"
            assert len({obs.instances[i].update_domain for i in batch.instance_ids}) == 1
        else:
            assert size == 1 or size + outside <= limit, (size, outside, limit)
        if not after.policy.enable_cross_zone_upgrade and not after.policy.by_update_domain:
            assert len({obs.instances[i].zone for i in batch.instance_ids}) == 1
        assert all(not obs.instances[i].protected for i in batch.instance_ids)
    # A settled batch that breaches the upgraded-unhealthy rule stops the run.
    if p.events("BatchCompleted") and upgraded_unhealthy_breached(after):
        assert not p.started_batch
        assert after.status in (RunStatus.ROLLING_BACK, RunStatus.FAULTED), after.status
    # A finished run leaves nothing mid-operation.
    if after.status.is_terminal:
        assert after.open_batch is None
        assert not any(ri.step in IN_FLIGHT_STEPS for ri in after.instances.values())
        assert p.decision.wake_at is None


def check_end(h: Harness) -> None:
    """What must hold once the run is finished."""
    run = h.run
    assert run.status.is_terminal
    for iid, before in h.data_disks_before.items():
        assert h.driver.data_disks(SID, iid) == before, f"data disks of {iid} changed"
    snapshot = h.driver.observe(SID, h.clock.now())
    for iid, ri in run.instances.items():
        if ri.step is Step.ROLLED_BACK:
            assert snapshot.instances[iid].image_version == OLD, iid
    if run.status is RunStatus.COMPLETED:
        for iid in run.instances:
            assert snapshot.instances[iid].image_version == run.target.image_version, iid
    for iid, where in h.placement.items():
        if where.protected:
            assert h.reimages(iid) == 0 and h.rollbacks(iid) == 0, iid
