"""Crash the shell at every checkpoint of a rollout, restart it, and get the same result.

The reference is one uninterrupted rollout of a small scale set whose seeded
faults make some instances fail (and roll back, or fail to) while the others
succeed. Then, for every checkpoint call ``k`` of that reference, the same
scenario runs on a fresh SQLite file with a shell that raises at its k-th
checkpoint; a new shell (``World.restart``) on the same database, driver and
clock picks up from whatever was committed and settles. Every such run must
end exactly like the reference: same run status and error, same step and
image per instance, no instance reimaged twice, nobody left behind, data
disks untouched, and the store agreeing with the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scaleset.drivers.simulated import Faults
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from scaleset.upgrade.state import Run, RunKind, StartedBy, Step
from scaleset.reconcile import commands
from tests.support import World, scale_set_id, scale_set_model

SEED = 2  # with these faults: successes, rollbacks and failed rollbacks in one run
FAULTS = Faults(
    reimage_fail_probability=0.15,
    never_healthy_probability=0.15,
    late_healthy_probability=0.1,
    late_by=timedelta(minutes=3),  # late, but inside the five-minute health timeout
    rollback_fail_probability=0.3,
)
POLICY = {
    "maxBatchInstancePercent": 25,  # batches of two
    "maxUnhealthyInstancePercent": 100,  # let every batch run despite the failures
    "maxUnhealthyUpgradedInstancePercent": 100,
}
CAPACITY = 8
TARGET = "1.1.0"


class SimulatedCrash(Exception):
    """The process died here."""


class CrashAt:
    """A checkpoint that counts its calls and raises at the listed (1-based) ones."""

    def __init__(self, *at: int) -> None:
        self.at = frozenset(at)
        self.calls: list[str] = []
        self.fired = 0

    def __call__(self, step: str) -> None:
        self.calls.append(step)
        if len(self.calls) in self.at:
            self.fired += 1
            raise SimulatedCrash(f"crash at checkpoint {len(self.calls)} ({step})")


@dataclass(frozen=True)
class Outcome:
    """Everything a rollout must reproduce whatever crashed along the way."""

    run_count: int
    status: str
    error_code: str | None
    steps: dict[str, str]
    images: dict[str, str | None]
    reimages: dict[str, int]
    rollbacks: dict[str, int]
    data_disks: dict[str, dict[int, str]]
    events: list[tuple[Any, ...]]


def new_store(path: Path) -> Store:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return Store(engine)


def crash_safe(world: World, action: Callable[[], object],
               restarts: Iterable[CrashAt | None]) -> int:
    """Do ``action``; each time the shell crashes, restart it (with the next checkpoint)
    and do it again. Returns how many crashes there were."""
    pending = iter(restarts)
    crashes = 0
    while True:
        try:
            action()
            return crashes
        except SimulatedCrash:
            crashes += 1
            world.restart(checkpoint=next(pending, None))


def rollout(path: Path, first: CrashAt, *then: CrashAt | None
            ) -> tuple[World, str, Outcome, dict[str, dict[int, str]], int]:
    """The scenario: create the scale set, bring it up, publish a version, let the
    platform run roll it out. The shell starts with checkpoint ``first``; after
    each crash a new shell gets the next of ``then`` (none: no more crashes)."""
    store = new_store(path)
    world = World.create(store, faults=FAULTS, seed=SEED, checkpoint=first)
    restarts = list(then)
    crashes = 0

    # World.add_scale_set would run the first pass outside crash_safe: create it by hand.
    sid = scale_set_id("vmss1")
    commands.create_scale_set(store, scale_set_id=sid,
                              model=scale_set_model("vmss1", capacity=CAPACITY, policy=POLICY),
                              now=world.clock.now())
    crashes += crash_safe(world, lambda: world.settle(sid), _drain(restarts))
    before = {iid: world.driver.data_disks(sid, iid) for iid in world.driver.instance_ids(sid)}
    world.publish(TARGET)
    crashes += crash_safe(world, lambda: world.settle(sid), _drain(restarts))
    # One more (crash-free) pass: the store catches up with the driver's last changes
    # (a release of a kept OS disk after the run's last pass).
    world.restart()
    world.reconciler.reconcile(sid)
    return world, sid, outcome(world, sid), before, crashes


def _drain(items: list[CrashAt | None]) -> Iterable[CrashAt | None]:
    while items:
        yield items.pop(0)


def outcome(world: World, sid: str) -> Outcome:
    with world.store.transaction() as tx:
        past = tx.past_runs(sid)
        run = tx.get_run(past[0].run_id)
        events = [(e["at"], e["run_id"], e["kind"], e["instance_id"], e["message"])
                  for e in tx.events(sid)]
    ids = sorted(world.driver.instance_ids(sid), key=int)
    snapshot = world.driver.observe(sid, world.clock.now())
    return Outcome(
        run_count=len(past),
        status=str(run.status),
        error_code=run.error.code if run.error else None,
        steps={iid: str(ri.step) for iid, ri in sorted(run.instances.items())},
        images={iid: snapshot.instances[iid].image_version for iid in ids},
        reimages={iid: world.driver.reimage_count(sid, iid) for iid in ids},
        rollbacks={iid: world.driver.rollback_count(sid, iid) for iid in ids},
        data_disks={iid: world.driver.data_disks(sid, iid) for iid in ids},
        events=events,
    )


def check_consistent(world: World, sid: str, before: dict[str, dict[int, str]]) -> list[str]:
    """The invariants every run (reference or crashed) must satisfy on its own."""
    problems: list[str] = []
    with world.store.transaction() as tx:
        records = tx.instances(sid)
        past = tx.past_runs(sid)
        run: Run = tx.get_run(past[0].run_id)
        row = tx.get_scale_set(sid)
    snapshot = world.driver.observe(sid, world.clock.now())
    if set(records) != set(snapshot.instances):
        problems.append(f"store has {sorted(records)}, driver {sorted(snapshot.instances)}")
    for iid, record in records.items():
        seen = snapshot.instances.get(iid)
        if seen is None:
            continue
        ours = (record.image_version, record.model_generation, record.os_disk_id,
                record.previous_os_disk_id, tuple(d.disk_id for d in record.data_disks))
        theirs = (seen.image_version, seen.generation, seen.os_disk_id,
                  seen.previous_os_disk_id, seen.data_disk_ids)
        if ours != theirs:
            problems.append(f"instance {iid}: store {ours} != driver {theirs}")
        if seen.previous_os_disk_id is not None:
            problems.append(f"instance {iid} still keeps OS disk {seen.previous_os_disk_id}")
    after = {iid: world.driver.data_disks(sid, iid) for iid in world.driver.instance_ids(sid)}
    if after != before:
        problems.append(f"data disks changed: {before} -> {after}")
    if len(past) != 1 or run.kind is not RunKind.OS_IMAGE or \
            run.started_by is not StartedBy.PLATFORM:
        problems.append(f"expected exactly one platform OS run, got {past}")
    if not run.status.is_terminal:
        problems.append(f"run still {run.status}")
    for iid, ri in run.instances.items():
        reimages = world.driver.reimage_count(sid, iid)
        if reimages > 1:
            problems.append(f"instance {iid} reimaged {reimages} times for {TARGET}")
        image = snapshot.instances[iid].image_version
        if ri.step is Step.SUCCEEDED and image != TARGET:
            problems.append(f"instance {iid} Succeeded but runs {image}")
        if ri.step is Step.ROLLED_BACK and image == TARGET:
            problems.append(f"instance {iid} rolled back but runs the target")
        if ri.step not in (Step.SUCCEEDED, Step.ROLLED_BACK, Step.ROLLBACK_FAILED):
            problems.append(f"instance {iid} left behind in step {ri.step}")
    if set(run.instances) != set(records):
        problems.append(f"run covers {sorted(run.instances)}, scale set has {sorted(records)}")
    if row is None or row.model.capacity != CAPACITY:
        problems.append("scale set row lost or changed")
    return problems


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, int]:
    counter = CrashAt()  # never crashes: it only counts
    world, sid, result, before, crashes = rollout(
        tmp_path_factory.mktemp("reference") / "scaleset.db", counter)
    assert crashes == 0
    assert check_consistent(world, sid, before) == []
    world.store.close()
    return result, len(counter.calls)


def test_the_reference_rollout_exercises_success_rollback_and_failed_rollback(
        reference: tuple[Outcome, int]) -> None:
    result, checkpoints = reference
    assert result.status == "Faulted"
    assert result.error_code == "RollingUpgradeInProgressWithFailedUpgradedVMs"
    steps = set(result.steps.values())
    # If the simulated driver's faults change, pick another SEED that covers all three.
    assert {"Succeeded", "RolledBack", "RollbackFailed"} <= steps, result.steps
    assert len(result.steps) == CAPACITY
    assert checkpoints > 50


def _compare(k: Any, path: Path, expected: Outcome, first: CrashAt,
             *then: CrashAt | None) -> list[str]:
    world, sid, got, before, crashes = rollout(path, first, *then)
    try:
        problems = check_consistent(world, sid, before)
        fired = first.fired + sum(c.fired for c in then if c is not None)
        if first.fired != 1 or crashes != fired:
            problems.append(f"{fired} crashes planned and fired, {crashes} seen")
        for field in ("run_count", "status", "error_code", "steps", "images", "reimages",
                      "rollbacks", "data_disks", "events"):
            if getattr(got, field) != getattr(expected, field):
                problems.append(f"{field}: {getattr(got, field)!r} != reference "
                                f"{getattr(expected, field)!r}")
        return [f"crash {k}: {p}" for p in problems]
    finally:
        world.store.close()


def test_a_crash_at_any_checkpoint_resumes_to_the_same_result(
        reference: tuple[Outcome, int], tmp_path: Path) -> None:
    expected, checkpoints = reference
    problems: list[str] = []
    for k in range(1, checkpoints + 1):
        problems += _compare(k, tmp_path / f"crash{k}.db", expected, CrashAt(k))
    assert problems == []


@pytest.mark.parametrize("again_after", [1, 2, 3, 5, 8])
def test_two_crashes_in_a_row_resume_to_the_same_result(
        reference: tuple[Outcome, int], tmp_path: Path, again_after: int) -> None:
    """Crash at k, then the restarted shell crashes again ``again_after`` checkpoints later."""
    expected, checkpoints = reference
    problems: list[str] = []
    for k in range(1, checkpoints + 1, 3):
        problems += _compare((k, again_after), tmp_path / f"crash{k}.db", expected,
                             CrashAt(k), CrashAt(again_after))
    assert problems == []
