"""Run a scenario: a scale set on the simulated driver, one rollout, a report.

Everything goes through the real shell and store (SQLite in memory unless a
database URL is given), on a virtual clock; only the instances are simulated.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scaleset.catalog import auto_upgrade
from scaleset.catalog.auto_upgrade import PlatformImage
from scaleset.clock import EPOCH, VirtualClock
from scaleset.drivers.simulated import SimulatedDriver
from scaleset.errors import OperationNotAllowed
from scaleset.reconcile import commands, probes
from scaleset.reconcile.loop import run_settled, run_until
from scaleset.reconcile.settings import ShellSettings
from scaleset.reconcile.shell import PassResult, Reconciler
from scaleset.sim import timeline as timelines
from scaleset.sim.scenario import Scenario
from scaleset.store.database import open_store
from scaleset.store.repository import Store
from scaleset.upgrade import policy as policy_rules
from scaleset.upgrade.state import Run, StartedBy, Step

SCALE_SET_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/sim/" \
               "providers/microsoft.compute/virtualmachinescalesets/vmss-sim"


@dataclass(frozen=True)
class BatchReport:
    index: int
    instances: tuple[str, ...]
    start_seconds: float
    end_seconds: float | None
    succeeded: int
    failed: int
    rolled_back: int

    def to_json(self) -> dict[str, Any]:
        return {"instances": list(self.instances), "startSeconds": self.start_seconds,
                "endSeconds": self.end_seconds}


@dataclass(frozen=True)
class SimulationReport:
    status: str
    error: dict[str, str] | None
    batches: list[BatchReport]
    makespan_seconds: float
    successful: int
    failed: int
    rolled_back: int
    rollback_failed: int
    pending: int
    lower_bound_seconds: float
    instances: int
    eligible: int
    target_version: str | None
    seed: int
    started_by: str
    rounds: int
    wall_seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)
    trigger_delay_seconds: float = 0.0
    """From publishing the target to the run's start (rolloutTiming; 0 without)."""
    timeline: timelines.Timeline | None = None
    """Every pass's sample of the run (``record_timeline=True``; None otherwise)."""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object (the interface scripts rely on)."""
        return {
            "status": self.status,
            "error": self.error,
            "batches": [b.to_json() for b in self.batches],
            "makespanSeconds": self.makespan_seconds,
            "successfulInstanceCount": self.successful,
            "failedInstanceCount": self.failed,
            "rolledBackInstanceCount": self.rolled_back,
            "lowerBoundSeconds": self.lower_bound_seconds,
            "rollbackFailedInstanceCount": self.rollback_failed,
            "pendingInstanceCount": self.pending,
            "instances": self.instances,
            "eligibleInstanceCount": self.eligible,
            "targetImageVersion": self.target_version,
            "startedBy": self.started_by,
            "seed": self.seed,
            "triggerDelaySeconds": self.trigger_delay_seconds,
        }


def lower_bound_seconds(eligible: int, total: int, max_batch_percent: int,
                        per_batch: timedelta, pause: timedelta) -> float:
    """The fastest a failure-free run can be: ceil(N / batch) batches back to back.

    >>> lower_bound_seconds(10, 10, 20, timedelta(seconds=110), timedelta(0))
    550.0
    """
    if eligible == 0:
        return 0.0
    batches = math.ceil(eligible / policy_rules.batch_limit(total, max_batch_percent))
    return batches * per_batch.total_seconds() + (batches - 1) * pause.total_seconds()


def _seconds(at: datetime | None, start: datetime) -> float | None:
    return None if at is None else (at - start).total_seconds()


def simulate(scenario: Scenario, *, database_url: str = "sqlite://",
             store: Store | None = None,
             on_round: Callable[[dict[str, PassResult]], None] | None = None,
             record_timeline: bool = False) -> SimulationReport:
    """Run ``scenario`` to the end of its rollout and report what happened.

    ``record_timeline``: also read the run and the instances back after every pass
    (``SimulationReport.timeline``, what ``simulate --plot`` draws). Reading changes
    nothing, so the run is the same with or without it.
    """
    wall = time.perf_counter()
    model = scenario.build_scale_set()
    clock = VirtualClock(EPOCH)
    bad = frozenset({scenario.target_version}) if scenario.faults.bad_image else frozenset()
    driver = SimulatedDriver(start=clock.now(), timings=scenario.timings.to_timings(),
                             faults=scenario.faults.to_faults(), seed=scenario.seed,
                             bad_images=bad)
    own_store = store is None
    store = store or open_store(database_url)
    ref = model.image_reference
    publisher, offer, sku = ref.publisher or "Sim", ref.offer or "Sim", ref.sku or "Sim"
    # The scenario's image is the simulator's own: it may upgrade automatically whatever
    # it is called (every other requirement still holds).
    settings = ShellSettings(health_timeout=scenario.health_timeout,
                             auto_upgrade_images=auto_upgrade.merged(
                                 auto_upgrade.DEFAULT_IMAGES,
                                 [PlatformImage(publisher, offer, sku)]))
    # The simulator holds no real instances: the server's capacity limits must not cap a
    # scenario below its own size.
    settings = dataclasses.replace(settings, limits=dataclasses.replace(
        settings.limits,
        max_instances_per_scale_set=max(settings.limits.max_instances_per_scale_set,
                                        model.capacity),
        max_instances_total=max(settings.limits.max_instances_total, model.capacity)))
    if scenario.rollout_timing is not None:
        settings = dataclasses.replace(settings,
                                       rollout_timing=scenario.rollout_timing.to_timing())
    reconciler = Reconciler(store=store, driver=driver, clock=clock, settings=settings)
    try:
        commands.publish_image_version(store, location=model.location, publisher=publisher,
                                       offer=offer, sku=sku, version=scenario.from_version,
                                       now=clock.now())
        probe_id = probes.health_probe_id(model)
        if probe_id is not None:  # the simulated world has the load balancer it names
            probes.ensure_probe(store, probe_id, location=model.location, now=clock.now())
        commands.create_scale_set(store, scale_set_id=SCALE_SET_ID, model=model, now=clock.now(),
                                  settings=settings)
        reconciler.reconcile(SCALE_SET_ID)  # creates the fleet on the current version
        commands.publish_image_version(store, location=model.location, publisher=publisher,
                                       offer=offer, sku=sku, version=scenario.target_version,
                                       now=clock.now())
        published = clock.now()
        if scenario.rollout_timing is None:
            run = commands.start_os_upgrade(store, scale_set_id=SCALE_SET_ID, now=clock.now(),
                                            settings=settings,
                                            started_by=StartedBy(scenario.started_by))
        else:
            run = _triggered(reconciler, clock, driver, store)

        samples: list[timelines.Sample] = []

        def done(results: dict[str, PassResult]) -> bool:
            if record_timeline:
                with store.transaction() as tx:
                    samples.append(timelines.sample(tx.get_run(run.run_id),
                                                    tx.instances(SCALE_SET_ID), clock.now()))
            if on_round is not None:
                on_round(results)
            return run_settled(results)

        loop = run_until(reconciler, clock, driver, [SCALE_SET_ID], done=done)
        with store.transaction() as tx:
            final = tx.get_run(run.run_id)
            total = len(tx.instances(SCALE_SET_ID))
            events = tx.events(SCALE_SET_ID, run_id=run.run_id)
        report = _report(final, scenario, total, loop.rounds, time.perf_counter() - wall,
                         events)
        return dataclasses.replace(
            report, trigger_delay_seconds=(final.start_time - published).total_seconds(),
            timeline=_timeline(final, samples) if record_timeline else None)
    finally:
        if own_store:
            store.close()


def _triggered(reconciler: Reconciler, clock: VirtualClock, driver: SimulatedDriver,
               store: Store) -> Run:
    """The run the platform's trigger starts, on the virtual clock (delays, jitter)."""
    waited = run_until(reconciler, clock, driver, [SCALE_SET_ID],
                       done=lambda last: last[SCALE_SET_ID].active_run_id is not None)
    run_id = waited.last[SCALE_SET_ID].active_run_id
    if run_id is None:
        raise OperationNotAllowed(
            "the platform started no run: the scale set does not qualify for automatic OS "
            "upgrade (see its events)")
    with store.transaction() as tx:
        return tx.get_run(run_id)


def _timeline(run: Run, samples: list[timelines.Sample]) -> timelines.Timeline:
    end = _seconds(run.end_time, run.start_time)
    return timelines.Timeline(
        samples=tuple(samples),
        end_seconds=end if end is not None else (samples[-1].seconds if samples else 0.0),
        max_unhealthy_percent=run.policy.max_unhealthy_instance_percent,
        max_unhealthy_upgraded_percent=(
            None if run.all_at_once else run.policy.max_unhealthy_upgraded_instance_percent))


def _report(run: Run, scenario: Scenario, total: int, rounds: int, wall: float,
            events: list[dict[str, Any]]) -> SimulationReport:
    progress = run.progress()
    batches = []
    for b in run.batches:
        steps = [run.instances[i].step for i in b.instance_ids if i in run.instances]
        batches.append(BatchReport(
            index=b.index, instances=b.instance_ids,
            start_seconds=_seconds(b.start, run.start_time) or 0.0,
            end_seconds=_seconds(b.end, run.start_time),
            succeeded=sum(s is Step.SUCCEEDED for s in steps),
            failed=sum(s in (Step.FAILED, Step.ROLLED_BACK, Step.ROLLBACK_FAILED,
                             Step.ROLLING_BACK) for s in steps),
            rolled_back=sum(s is Step.ROLLED_BACK for s in steps),
        ))
    end = run.end_time or run.start_time
    timings = scenario.timings.to_timings()
    return SimulationReport(
        status=str(run.status),
        error={"code": run.error.code, "message": run.error.message} if run.error else None,
        batches=batches,
        makespan_seconds=(end - run.start_time).total_seconds(),
        successful=progress.successful,
        failed=progress.failed,
        rolled_back=progress.rolled_back,
        rollback_failed=progress.rollback_failed,
        pending=progress.pending,
        lower_bound_seconds=lower_bound_seconds(
            len(run.instances), total, run.policy.max_batch_instance_percent,
            timings.per_upgrade, run.policy.pause_time_between_batches),
        instances=total,
        eligible=len(run.instances),
        target_version=run.target.image_version,
        seed=scenario.seed,
        started_by=str(run.started_by),
        rounds=rounds,
        wall_seconds=wall,
        events=events,
    )
