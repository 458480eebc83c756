"""A simulated fleet: instances with latencies and seeded, deterministic faults.

Nothing here sleeps. The driver keeps a timeline (a heap of instants) and
applies whatever falls due when it is observed, so a discrete-event loop can
jump a virtual clock from one instant to the next (``next_event_time``).

Timing of an upgrade: the OS disk is replaced after ``reimage``; the instance
has booted (and the operation succeeds) after ``reimage + boot``; it reports
Healthy ``healthy`` later. A rollback swaps the kept disk back and boots it.

Power verbs follow the same state machine as the process driver: powerOff and
deallocate take ``stop`` (the instance shows ``stopping``/``deallocating``
meanwhile), start takes ``boot`` and reports Healthy ``healthy`` later,
restart and redeploy do both (a redeploy also moves the instance to a new
simulated host). Starting keeps the OS disk: custom data does not run again.

Faults are drawn from ``random.Random(f"{seed}/{op_id}")``: the same seed and
operation give the same fate whatever order things happen in, so a run that
is interrupted and resumed meets the same faults as one that is not.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scaleset.drivers.base import (
    DriverInstance,
    DriverSnapshot,
    InstanceSpec,
    Operation,
    PowerOperation,
    ProbeSpec,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.health import aggregate
from scaleset.model.instance import HealthState, PowerAction, PowerState, ProvisioningState
from scaleset.upgrade.observations import OperationObservation, OperationState

# A flapping instance toggles this many times, then settles Healthy: bounded, so a
# discrete-event loop always runs out of events.
FLAP_TOGGLES = 16


@dataclass(frozen=True, slots=True)
class Timings:
    """Latencies of simulated instance operations."""

    reimage: timedelta = timedelta(seconds=60)
    boot: timedelta = timedelta(seconds=30)
    healthy: timedelta = timedelta(seconds=20)
    stop: timedelta = timedelta(seconds=10)
    """How long powerOff / deallocate (and the first half of restart) take."""

    @property
    def per_upgrade(self) -> timedelta:
        return self.reimage + self.boot + self.healthy


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """At ``at`` (from the start of the simulation), these instances report ``health``."""

    at: timedelta
    instances: tuple[str, ...]
    health: HealthState


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong, and how often. Probabilities are per upgrade operation."""

    reimage_fail_probability: float = 0.0
    never_healthy_probability: float = 0.0
    late_healthy_probability: float = 0.0
    late_by: timedelta = timedelta(minutes=10)
    flap_probability: float = 0.0
    flap_period: timedelta = timedelta(seconds=90)
    extension_fail_probability: float = 0.0
    rollback_fail_probability: float = 0.0
    unhealthy_at_start: tuple[str, ...] = ()
    events: tuple[HealthEvent, ...] = ()

    @property
    def drawn(self) -> bool:
        """Whether any fault is left to chance (with none, nothing needs drawing: a draw
        below a probability of 0 never happens)."""
        return any(p > 0 for p in (
            self.reimage_fail_probability, self.never_healthy_probability,
            self.late_healthy_probability, self.flap_probability,
            self.extension_fail_probability, self.rollback_fail_probability))


@dataclass
class _Disk:
    disk_id: str
    image_version: str | None
    generation: int
    provisioned_extensions: tuple[str, ...] = ()  # in the order they ran on this disk
    custom_data_runs: int = 0
    health_source: bool = True  # a probe or the health extension watches the application


@dataclass
class _Instance:
    instance_id: str
    os_disk: _Disk
    data_disks: dict[int, str]  # lun -> content; the driver never writes them after creation
    data_disk_ids: tuple[str, ...]
    previous: _Disk | None = None
    busy_op: str | None = None
    failed: bool = False  # provisioning failed; down until rolled back or reimaged
    healthy_from: datetime | None = None  # None: never healthy on this disk
    flap_period: timedelta | None = None
    override: HealthState | None = None
    extension_failed: bool = False
    reimages: int = 0
    rollbacks: int = 0
    boots: list[str] = field(default_factory=list)
    stopped: bool = False  # powered off by the user (or deallocated)
    deallocated: bool = False
    power_phase: PowerState | None = None  # stopping / deallocating / starting, while a verb runs
    hosts: int = 1  # how many hosts it has run on: a redeploy moves it to a new one
    data_resets: int = 0

    def power_state(self) -> PowerState:
        if self.power_phase is not None:
            return self.power_phase
        if self.busy_op is not None:
            return PowerState.STARTING
        if self.stopped:
            return PowerState.DEALLOCATED if self.deallocated else PowerState.STOPPED
        return PowerState.STOPPED if self.failed else PowerState.RUNNING

    def health(self, now: datetime) -> HealthState:
        extensions = ["Failed" if self.extension_failed else "Succeeded"]
        # Without a probe or health extension nobody asks the application: an
        # instance that runs with its extensions provisioned is healthy.
        probe = self.application_health(now) if self.os_disk.health_source else None
        if self.stopped or self.power_phase is not None:
            # Powered off: nothing answers a probe, whatever watched it before.
            return aggregate.instance_health(self.power_state(), extensions, None)
        if self.override is not None and self.busy_op is None:
            return self.override  # an outage (crash, maintenance) shows whatever watches
        return aggregate.instance_health(self.power_state(), extensions, probe)

    def application_health(self, now: datetime) -> HealthState:
        """What the application's health endpoint would answer now."""
        if self.override is not None:
            return self.override
        if self.healthy_from is None:
            return HealthState.UNHEALTHY
        if now < self.healthy_from:
            return HealthState.INITIALIZING
        if self.flap_period is not None:
            phase = int((now - self.healthy_from) / self.flap_period)
            flapping = phase < FLAP_TOGGLES and phase % 2 == 1
            return HealthState.UNHEALTHY if flapping else HealthState.HEALTHY
        return HealthState.HEALTHY


@dataclass
class _Op:
    op_id: str
    scale_set_id: str
    instance_id: str
    kind: str
    started: datetime
    state: OperationState = OperationState.RUNNING
    finished_at: datetime | None = None
    message: str | None = None


@dataclass
class _ScaleSet:
    instances: dict[str, _Instance] = field(default_factory=dict)
    ops: dict[str, _Op] = field(default_factory=dict)
    views: dict[str, DriverInstance] = field(default_factory=dict)
    """What the last ``observe`` reported per instance: reported again as the very same
    object while nothing about it changed, so the shell can skip comparing it."""
    stale: set[str] = field(default_factory=set)
    """Instances something happened to since the last ``observe`` (their view is rebuilt;
    an instance's health changes only at its scheduled events, so the rest stand)."""
    all_stale: bool = False


class _OpView(Mapping[str, OperationObservation]):
    """Operations of one scale set, observed lazily (a run may hold 100,000 of them)."""

    def __init__(self, ops: dict[str, _Op]) -> None:
        self._ops = ops

    def __getitem__(self, op_id: str) -> OperationObservation:
        op = self._ops[op_id]
        return OperationObservation(op_id, op.state, op.finished_at, op.message)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ops)

    def __len__(self) -> int:
        return len(self._ops)


class SimulatedDriver:
    """Instances that exist only in memory, on a virtual timeline.

    ``bad_images`` are image versions whose instances never become healthy
    (the demo's broken release).
    """

    def __init__(
        self,
        *,
        start: datetime,
        timings: Timings | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        bad_images: frozenset[str] = frozenset(),
    ) -> None:
        self.timings = timings or Timings()
        self.faults = faults or Faults()
        self.seed = seed
        self.bad_images = set(bad_images)
        self._start = start
        self._now = start
        self._sets: dict[str, _ScaleSet] = {}
        self._timeline: list[tuple[datetime, int, str, str, str]] = []
        self._seq = 0
        self._payloads: dict[int, object] = {}
        self._changed: set[str] = set()  # scale sets whose instances changed (``changes``)
        self._all_changed = False
        for index, event in enumerate(self.faults.events):
            self._schedule(start + event.at, "health-event", "", str(index))

    # -- the Driver protocol ---------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> None:
        ss = self._sets.setdefault(spec.scale_set_id, _ScaleSet())
        if spec.instance_id in ss.instances:
            return
        data = {d.lun: f"data:{spec.scale_set_id}/{spec.instance_id}/lun{d.lun}"
                for d in spec.data_disks}
        inst = _Instance(
            instance_id=spec.instance_id,
            os_disk=_Disk(spec.os_disk_id, spec.image_version, spec.generation,
                          tuple(e.name for e in spec.extensions),
                          1 if spec.custom_data else 0, spec.health_source),
            data_disks=data,
            data_disk_ids=tuple(d.disk_id for d in spec.data_disks),
        )
        if self._now == self._start:
            inst.healthy_from = self._now  # the initial fleet is up when the simulation starts
            if spec.instance_id in self.faults.unhealthy_at_start:
                inst.override = HealthState.UNHEALTHY
        else:
            self._boot(inst, spec.image_version, self._now + self.timings.boot, rng=None,
                       sid=spec.scale_set_id)
        inst.boots.append(spec.os_disk_id)
        ss.instances[spec.instance_id] = inst
        ss.stale.add(spec.instance_id)

    def delete_instance(self, scale_set_id: str, instance_id: str) -> None:
        ss = self._sets.get(scale_set_id)
        if ss is not None:
            ss.instances.pop(instance_id, None)
            ss.views.pop(instance_id, None)
            ss.stale.discard(instance_id)

    def submit(self, operation: Operation) -> None:
        ss = self._sets.setdefault(operation.scale_set_id, _ScaleSet())
        inst = ss.instances.get(operation.instance_id)
        if inst is not None:
            ss.stale.add(operation.instance_id)
        if isinstance(operation, ReleaseOperation):
            if inst is not None:
                inst.previous = None
            return
        if operation.op_id in ss.ops:
            return  # idempotent: the same operation id is the same operation
        kind = ("upgrade" if isinstance(operation, UpgradeOperation) else
                "power" if isinstance(operation, PowerOperation) else "rollback")
        op = _Op(operation.op_id, operation.scale_set_id, operation.instance_id, kind,
                 self._now)
        ss.ops[op.op_id] = op
        if inst is None:
            self._finish(op, OperationState.FAILED, "instance does not exist")
            return
        if isinstance(operation, PowerOperation):
            self._power(inst, op, operation)
            return
        inst.busy_op = op.op_id
        if isinstance(operation, UpgradeOperation):
            self._schedule(self._now + self.timings.reimage, "reimage", operation.scale_set_id,
                           op.op_id, payload=operation)
        elif isinstance(operation, RollbackOperation):
            self._schedule(self._now + self.timings.boot, "rollback", operation.scale_set_id,
                           op.op_id)

    def observe(self, scale_set_id: str, now: datetime) -> DriverSnapshot:
        self._advance_to(now)
        ss = self._sets.get(scale_set_id) or _ScaleSet()
        views = ss.views
        stale = list(ss.instances) if ss.all_stale else ss.stale
        for iid in stale:
            inst = ss.instances.get(iid)
            if inst is None:
                continue
            disk = inst.os_disk
            previous = inst.previous.disk_id if inst.previous else None
            power = inst.power_state()
            provisioning = (ProvisioningState.UPDATING if inst.busy_op
                            else ProvisioningState.FAILED if inst.failed
                            else ProvisioningState.SUCCEEDED)
            health = inst.health(now)
            view = views.get(iid)
            if view is None or view.health is not health or view.power_state is not power \
                    or view.provisioning_state is not provisioning \
                    or view.os_disk_id != disk.disk_id or view.previous_os_disk_id != previous \
                    or view.image_version != disk.image_version \
                    or view.generation != disk.generation \
                    or view.data_disk_ids != inst.data_disk_ids:
                views[iid] = DriverInstance(
                    instance_id=iid, image_version=disk.image_version,
                    generation=disk.generation, os_disk_id=disk.disk_id,
                    previous_os_disk_id=previous, power_state=power,
                    provisioning_state=provisioning, health=health,
                    data_disk_ids=inst.data_disk_ids)
        ss.stale = set()
        ss.all_stale = False
        return DriverSnapshot(dict(views), _OpView(ss.ops))

    def changes(self, now: datetime) -> frozenset[str] | None:
        """Move the simulation to ``now``; the scale sets whose instances changed since the
        last call (None: a fault event, which may concern any of them)."""
        self._advance_to(now)
        changed, everyone = frozenset(self._changed), self._all_changed
        self._changed.clear()
        self._all_changed = False
        return None if everyone else changed

    def configure_probe(self, scale_set_id: str, probe: ProbeSpec | None) -> None:
        """Simulated applications answer whatever probes them: nothing to set up."""

    def scale_set_ids(self) -> frozenset[str]:
        return frozenset(sid for sid, ss in self._sets.items() if ss.instances)

    def console_log(self, scale_set_id: str, instance_id: str) -> bytes | None:
        """A simulated instance's console: one line per OS disk it booted."""
        inst = self._sets.get(scale_set_id, _ScaleSet()).instances.get(instance_id)
        if inst is None:
            return None
        return "".join(f"[simulated] booted OS disk {disk}\n" for disk in inst.boots).encode()

    # -- the discrete-event loop's view ----------------------------------------
    def next_event_time(self) -> datetime | None:
        """The next instant at which something changes, or ``None``."""
        return self._timeline[0][0] if self._timeline else None

    # -- inspection for tests and reports --------------------------------------
    def data_disks(self, scale_set_id: str, instance_id: str) -> dict[int, str]:
        return dict(self._sets[scale_set_id].instances[instance_id].data_disks)

    def provisioned_extensions(self, scale_set_id: str, instance_id: str) -> tuple[str, ...]:
        """The extensions run on the instance's current OS disk, in the order they ran."""
        return self._sets[scale_set_id].instances[instance_id].os_disk.provisioned_extensions

    def custom_data_runs(self, scale_set_id: str, instance_id: str) -> int:
        """How often custom data ran on the instance's current OS disk (once per new disk)."""
        return self._sets[scale_set_id].instances[instance_id].os_disk.custom_data_runs

    def reimage_count(self, scale_set_id: str, instance_id: str) -> int:
        return self._sets[scale_set_id].instances[instance_id].reimages

    def rollback_count(self, scale_set_id: str, instance_id: str) -> int:
        return self._sets[scale_set_id].instances[instance_id].rollbacks

    def instance_ids(self, scale_set_id: str) -> list[str]:
        return list(self._sets.get(scale_set_id, _ScaleSet()).instances)

    def host_count(self, scale_set_id: str, instance_id: str) -> int:
        """How many simulated hosts the instance has run on (a redeploy adds one)."""
        return self._sets[scale_set_id].instances[instance_id].hosts

    def data_disk_resets(self, scale_set_id: str, instance_id: str) -> int:
        """How often ``reimageall`` emptied the instance's data disks."""
        return self._sets[scale_set_id].instances[instance_id].data_resets

    def set_health(self, scale_set_id: str, instance_id: str, health: HealthState | None) -> None:
        """Force an instance's reported health (``None`` lifts the override)."""
        self._sets[scale_set_id].instances[instance_id].override = health
        self._sets[scale_set_id].stale.add(instance_id)

    # -- internals -------------------------------------------------------------
    def _schedule(self, at: datetime, kind: str, scale_set_id: str, key: str,
                  payload: object = None) -> None:
        self._seq += 1
        if payload is not None:
            self._payloads[self._seq] = payload
        heapq.heappush(self._timeline, (at, self._seq, kind, scale_set_id, key))

    def _advance_to(self, now: datetime) -> None:
        while self._timeline and self._timeline[0][0] <= now:
            at, seq, kind, sid, key = heapq.heappop(self._timeline)
            self._now = max(self._now, at)
            self._apply(at, seq, kind, sid, key)
        self._now = max(self._now, now)

    def _apply(self, at: datetime, seq: int, kind: str, sid: str, key: str) -> None:
        if sid:
            self._changed.add(sid)
            self._mark_stale(seq, kind, sid, key)
        else:
            self._all_changed = True  # a fault event: whoever has the instances it names
            for ss in self._sets.values():
                ss.all_stale = True
        if kind == "health-event":
            event = self.faults.events[int(key)]
            for ss in self._sets.values():
                for iid in event.instances:
                    if iid in ss.instances:
                        ss.instances[iid].override = (
                            None if event.health is HealthState.HEALTHY else event.health
                        )
            return
        if kind in ("healthy", "flap"):
            return  # nothing to apply: the instance's health is derived from the time
        if kind in ("power-stopped", "power-started"):
            self._power_step(kind, sid, key, seq, at)
            return
        owner = self._sets.get(sid)
        op = owner.ops.get(key) if owner else None
        if owner is None or op is None:
            return
        inst = owner.instances.get(op.instance_id)
        if inst is None:
            self._finish(op, OperationState.FAILED, "instance was deleted", at)
            return
        rng = random.Random(f"{self.seed}/{op.op_id}") if self.faults.drawn else None
        if kind == "reimage":
            payload = self._payloads.pop(seq)
            assert isinstance(payload, UpgradeOperation)
            if rng is not None and rng.random() < self.faults.reimage_fail_probability:
                inst.busy_op = None
                inst.failed = True
                self._finish(op, OperationState.FAILED,
                             "OS disk provisioning failed (simulated fault)", at)
                return
            inst.reimages += 1
            if payload.reset_data_disks:  # reimageall: the data disks come back empty
                inst.data_disks = {lun: "" for lun in inst.data_disks}
                inst.data_resets += 1
            # A new OS disk boots: a stopped or deallocated instance runs again afterwards.
            inst.stopped = inst.deallocated = False
            inst.previous = inst.os_disk
            inst.os_disk = _Disk(payload.os_disk_id,
                                 payload.image_version or inst.os_disk.image_version,
                                 payload.generation, tuple(e.name for e in payload.extensions),
                                 1 if payload.custom_data else 0, payload.health_source)
            inst.override = None
            inst.failed = False
            inst.boots.append(inst.os_disk.disk_id)
            self._schedule(at + self.timings.boot, "booted", sid, op.op_id)
        elif kind == "booted":
            inst.busy_op = None
            boot_rng = random.Random(f"{self.seed}/{op.op_id}/boot") if self.faults.drawn \
                else None
            self._boot(inst, inst.os_disk.image_version, at, boot_rng, sid=sid)
            self._finish(op, OperationState.SUCCEEDED, None, at)
        elif kind == "rollback":
            inst.busy_op = None
            # After a failed reimage the old disk was never detached: restoring it
            # is booting it again. Otherwise the kept disk is swapped back in.
            restorable = inst.previous is not None or inst.failed
            if not restorable or (rng is not None
                                  and rng.random() < self.faults.rollback_fail_probability):
                inst.failed = True
                self._finish(op, OperationState.FAILED,
                             "restoring the previous OS disk failed (simulated fault)"
                             if restorable else "no previous OS disk to restore", at)
                return
            inst.rollbacks += 1
            if inst.previous is not None:
                inst.os_disk, inst.previous = inst.previous, None
            inst.failed = False
            inst.override = None
            inst.extension_failed = False
            inst.flap_period = None
            inst.healthy_from = at + self.timings.healthy
            self._schedule(inst.healthy_from, "healthy", sid, op.op_id)
            self._finish(op, OperationState.SUCCEEDED, None, at)

    def _mark_stale(self, seq: int, kind: str, sid: str, key: str) -> None:
        """The instance an event is about: its view is rebuilt at the next ``observe``."""
        owner = self._sets.get(sid)
        if owner is None:
            return
        if kind in ("power-stopped", "power-started"):
            payload = self._payloads.get(seq)
            if isinstance(payload, PowerOperation):
                owner.stale.add(payload.instance_id)
                return
        op = owner.ops.get(key)
        if op is not None:
            owner.stale.add(op.instance_id)
        elif kind in ("healthy", "flap"):
            owner.stale.add(key)  # scheduled under the instance's id
        else:
            owner.all_stale = True  # not known whose: every view is rebuilt

    def _power(self, inst: _Instance, op: _Op, operation: PowerOperation) -> None:
        """Begin a power verb; asking for the state the instance is in changes nothing."""
        action = operation.action
        running = not inst.stopped
        if (action is PowerAction.START and running) or (
                action is PowerAction.POWER_OFF and inst.stopped) or (
                action is PowerAction.DEALLOCATE and inst.deallocated):
            self._finish(op, OperationState.SUCCEEDED, None)
            return
        if action is PowerAction.START or (not running and action in (
                PowerAction.RESTART, PowerAction.REDEPLOY)):
            inst.power_phase = PowerState.STARTING
            self._schedule(self._now + self.timings.boot, "power-started", op.scale_set_id,
                           op.op_id, payload=operation)
            return
        inst.power_phase = (PowerState.DEALLOCATING if action is PowerAction.DEALLOCATE
                            else PowerState.STOPPING)
        stop = timedelta(0) if operation.skip_shutdown else self.timings.stop
        self._schedule(self._now + stop, "power-stopped", op.scale_set_id, op.op_id,
                       payload=operation)

    def _power_step(self, kind: str, sid: str, key: str, seq: int, at: datetime) -> None:
        payload = self._payloads.pop(seq)
        assert isinstance(payload, PowerOperation)
        owner = self._sets.get(sid)
        op = owner.ops.get(key) if owner else None
        inst = owner.instances.get(payload.instance_id) if owner else None
        if op is None:
            return
        if inst is None:
            self._finish(op, OperationState.FAILED, "instance was deleted", at)
            return
        action = payload.action
        if kind == "power-stopped":
            inst.stopped = True
            inst.deallocated = inst.deallocated or action is PowerAction.DEALLOCATE
            if action in (PowerAction.RESTART, PowerAction.REDEPLOY):
                inst.power_phase = PowerState.STARTING
                self._schedule(at + self.timings.boot, "power-started", sid, key,
                               payload=payload)
                return
            inst.power_phase = None
            self._finish(op, OperationState.SUCCEEDED, None, at)
            return
        # Booted again from the same OS disk: nothing is provisioned anew.
        inst.stopped = inst.deallocated = False
        inst.power_phase = None
        if action is PowerAction.REDEPLOY:
            inst.hosts += 1
        inst.boots.append(inst.os_disk.disk_id)
        if inst.os_disk.image_version in self.bad_images or inst.extension_failed:
            inst.healthy_from = None
        else:
            inst.healthy_from = at + self.timings.healthy
            self._schedule(inst.healthy_from, "healthy", sid, inst.instance_id)
        self._finish(op, OperationState.SUCCEEDED, None, at)

    def _boot(self, inst: _Instance, image_version: str | None, at: datetime,
              rng: random.Random | None, *, sid: str = "") -> None:
        """The instance has booted at ``at``: decide when (if ever) it reports Healthy."""
        inst.flap_period = None
        inst.extension_failed = False
        if image_version in self.bad_images:
            inst.healthy_from = None
            return
        f = self.faults
        draw = rng.random if rng is not None else (lambda: 1.0)
        never, extension_fails, late, flaps = draw(), draw(), draw(), draw()
        if never < f.never_healthy_probability:
            inst.healthy_from = None
            return
        if extension_fails < f.extension_fail_probability:
            inst.extension_failed = True
            inst.healthy_from = None
            return
        delay = self.timings.healthy + (f.late_by if late < f.late_healthy_probability else
                                        timedelta(0))
        inst.healthy_from = at + delay
        self._schedule(inst.healthy_from, "healthy", sid, inst.instance_id)
        if flaps < f.flap_probability:
            inst.flap_period = f.flap_period
            for k in range(1, FLAP_TOGGLES + 1):
                self._schedule(inst.healthy_from + f.flap_period * k, "flap", sid,
                               inst.instance_id)

    def _finish(self, op: _Op, state: OperationState, message: str | None,
                at: datetime | None = None) -> None:
        op.state = state
        op.finished_at = at or self._now
        op.message = message
