"""The whole engine under random operations: a Hypothesis state machine over the World.

Rules do what users, the platform and bad luck do: publish image versions,
start and cancel upgrades, change capacity, flip instance health, let
virtual time pass, and crash the shell mid-pass. After every step the
invariants must hold:

* at most one active run per scale set;
* no instance is reimaged twice by the same run;
* data disks survive everything but the instance's own deletion;
* a run's status moves only along ``LEGAL_TRANSITIONS`` (and an instance's
  step only forward along ``STEP_TRANSITIONS``);
* progress counts add up, in the run and in the store's summaries;
* ``osUpgradeHistory`` has at most five items, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from scaleset.drivers.simulated import Faults, Timings
from scaleset.errors import OperationNotAllowed
from scaleset.model.instance import HealthState
from scaleset.reconcile import commands, views
from scaleset.reconcile.loop import run_settled
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from scaleset.upgrade.state import (
    LEGAL_TRANSITIONS,
    STEP_TRANSITIONS,
    Run,
    RunStatus,
    Step,
)
from tests.support import World

MAX_CAPACITY = 6
ACTIVE = (RunStatus.ROLLING_FORWARD, RunStatus.ROLLING_BACK)


class SimulatedCrash(Exception):
    """The shell's process died here."""


def _reachable(step: Step) -> frozenset[Step]:
    """Every step an instance may be in later (itself included)."""
    seen = {step}
    frontier = [step]
    while frontier:
        for nxt in STEP_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return frozenset(seen)


REACHABLE = {step: _reachable(step) for step in Step}


class EngineMachine(RuleBasedStateMachine):
    """One scale set, one shell (restarted at will), one simulated fleet."""

    def __init__(self) -> None:
        super().__init__()
        engine = make_engine("sqlite://")
        migrate(engine)
        self.store = Store(engine)
        self.world: World
        self.sid = ""
        self.minor = 0
        self.statuses: dict[str, RunStatus] = {}
        self.steps: dict[tuple[str, str], Step] = {}
        self.end_times: dict[str, datetime | None] = {}
        self.data_disks: dict[str, dict[int, str]] = {}
        self.deleted: set[str] = set()

    @initialize(
        capacity=st.integers(2, MAX_CAPACITY),
        batch_percent=st.sampled_from([20, 34, 50, 100]),
        pause=st.sampled_from(["PT0S", "PT30S", "PT5M"]),
        faults=st.booleans(),
        seed=st.integers(0, 1000),
        disable_rollback=st.booleans(),
        newer_version=st.booleans(),
        automatic=st.booleans(),
    )
    def create(self, capacity: int, batch_percent: int, pause: str, faults: bool, seed: int,
               disable_rollback: bool, newer_version: bool, automatic: bool) -> None:
        chance = 0.2 if faults else 0.0
        self.world = World.create(
            self.store, seed=seed,
            timings=Timings(reimage=timedelta(seconds=60), boot=timedelta(seconds=30),
                            healthy=timedelta(seconds=20)),
            faults=Faults(reimage_fail_probability=chance / 2, never_healthy_probability=chance,
                          late_healthy_probability=chance, late_by=timedelta(minutes=2),
                          rollback_fail_probability=chance / 2),
        )
        self.sid = self.world.add_scale_set(
            capacity=capacity, automatic=automatic, disable_automatic_rollback=disable_rollback,
            policy={"maxBatchInstancePercent": batch_percent,
                    # Azure refuses a batch larger than the unhealthy limit.
                    "maxUnhealthyInstancePercent": max(60, batch_percent),
                    "maxUnhealthyUpgradedInstancePercent": 60,
                    "pauseTimeBetweenBatches": pause})
        if newer_version:  # with automatic OS upgrade, a platform run starts on the next pass
            self.publish_newer_version()

    def teardown(self) -> None:
        try:
            if self.sid:
                # Left alone, every run ends and nothing is left half-done.
                self.world.restart()
                result = self.world.settle(self.sid)
                assert run_settled(result.last)
                self.check_everything()
                assert self.active_runs() == []
        finally:
            self.store.close()

    # -- helpers -----------------------------------------------------------------------
    def active_runs(self) -> list[Run]:
        with self.store.transaction() as tx:
            return [r for r in tx.past_runs(self.sid) if r.status in ACTIVE]

    def passes(self, until: datetime, max_passes: int = 200) -> None:
        """Run passes on the virtual clock up to ``until``, jumping from event to event."""
        for _ in range(max_passes):
            result = self.world.reconciler.reconcile(self.sid)
            now = self.world.clock.now()
            candidates = [t for t in (result.wake_at, self.world.driver.next_event_time())
                          if t is not None]
            nxt = max(min(candidates), now) if candidates else until
            if result.conflict or result.wake_at == now:
                continue  # look again at once (a run just ended, or someone wrote)
            if nxt > until:
                self.world.clock.advance_to(until)
                self.world.reconciler.reconcile(self.sid)
                return
            self.world.clock.advance_to(nxt)
        self.world.clock.advance_to(max(until, self.world.clock.now()))

    # -- rules -------------------------------------------------------------------------
    @rule()
    def publish_newer_version(self) -> None:
        self.minor += 1
        self.world.publish(f"1.{self.minor}.0")

    @rule()
    def start_user_upgrade(self) -> None:
        busy = bool(self.active_runs())
        if busy:
            with pytest.raises(OperationNotAllowed):
                self.world.start_upgrade(self.sid)
        else:
            run = self.world.start_upgrade(self.sid)
            assert run.status is RunStatus.ROLLING_FORWARD
            assert [r.run_id for r in self.active_runs()] == [run.run_id]

    @rule(seconds=st.one_of(st.integers(0, 120), st.integers(120, 1800)))
    def let_time_pass(self, seconds: int) -> None:
        self.passes(self.world.clock.now() + timedelta(seconds=seconds))

    @rule(data=st.data(), health=st.sampled_from([HealthState.UNHEALTHY, None]))
    def flip_health(self, data: st.DataObject, health: HealthState | None) -> None:
        ids = sorted(self.world.driver.instance_ids(self.sid), key=int)
        if ids:
            iid = data.draw(st.sampled_from(ids), label="instance")
            self.world.driver.set_health(self.sid, iid, health)

    @rule(at=st.integers(1, 12), passes=st.integers(1, 4))
    def crash_and_restart(self, at: int, passes: int) -> None:
        calls: list[str] = []

        def crash(step: str) -> None:
            calls.append(step)
            if len(calls) == at:
                raise SimulatedCrash(step)

        self.world.restart(checkpoint=crash)
        try:
            for _ in range(passes):
                self.world.reconciler.reconcile(self.sid)
                nxt = self.world.driver.next_event_time()
                if nxt is not None:
                    self.world.clock.advance_to(nxt)
        except SimulatedCrash:
            pass
        self.world.restart()

    @rule()
    def cancel(self) -> None:
        active = self.active_runs()
        if not active:
            with pytest.raises(OperationNotAllowed):
                commands.cancel(self.store, scale_set_id=self.sid, now=self.world.clock.now())
            return
        cancelled = commands.cancel(self.store, scale_set_id=self.sid,
                                    now=self.world.clock.now())
        assert cancelled.run_id == active[0].run_id
        assert cancelled.cancel_requested
        assert self.world.run(cancelled.run_id).cancel_requested

    @rule(capacity=st.integers(0, MAX_CAPACITY))
    def set_capacity(self, capacity: int) -> None:
        commands.set_capacity(self.store, scale_set_id=self.sid, capacity=capacity,
                              now=self.world.clock.now())

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def check_everything(self) -> None:
        if not self.sid:
            return
        with self.store.transaction() as tx:
            past = tx.past_runs(self.sid)
            runs = {r.run_id: tx.get_run(r.run_id) for r in past}
            summaries = {s.run.run_id: s for s in tx.run_summaries(self.sid)}
            records = tx.instances(self.sid)
        self._one_active_run(list(runs.values()))
        self._runs_move_legally(runs)
        self._progress_adds_up(runs, summaries)
        self._no_double_reimage(runs)
        self._data_disks_survive(records)
        self._history_is_bounded_and_newest_first()

    def _one_active_run(self, runs: list[Run]) -> None:
        active = [r.run_id for r in runs if r.status in ACTIVE]
        assert len(active) <= 1, f"several active runs: {active}"

    def _runs_move_legally(self, runs: Mapping[str, Run]) -> None:
        for run_id, run in runs.items():
            before = self.statuses.get(run_id)
            if before is None:
                assert run.status in ACTIVE or run.end_time is not None
            elif run.status is not before:
                assert run.status in LEGAL_TRANSITIONS[before], \
                    f"run {run_id}: {before} -> {run.status}"
            if before is not None and before.is_terminal:
                assert run.end_time == self.end_times[run_id], "a finished run changed"
            self.statuses[run_id] = run.status
            self.end_times[run_id] = run.end_time
            assert run.status.is_terminal == (run.end_time is not None)
            for iid, ri in run.instances.items():
                old = self.steps.get((run_id, iid))
                if old is not None:
                    assert ri.step in REACHABLE[old], f"run {run_id} {iid}: {old} -> {ri.step}"
                self.steps[(run_id, iid)] = ri.step
            if run.status.is_terminal:
                # A finished run has nothing in flight.
                assert not any(ri.step in (Step.UPGRADING, Step.WAITING_HEALTH)
                               for ri in run.instances.values()), run
            if run.status is RunStatus.COMPLETED:
                assert all(ri.step is Step.SUCCEEDED for ri in run.instances.values())

    def _progress_adds_up(self, runs: Mapping[str, Run], summaries: Mapping[str, object]
                          ) -> None:
        assert set(summaries) == set(runs)
        for run_id, run in runs.items():
            progress = run.progress()
            assert progress.total == len(run.instances)
            assert progress.rolled_back + progress.rollback_failed <= progress.failed
            assert summaries[run_id].progress == progress  # type: ignore[attr-defined]

    def _no_double_reimage(self, runs: Mapping[str, Run]) -> None:
        driver = self.world.driver
        for iid in driver.instance_ids(self.sid):
            touched = sum(1 for run in runs.values()
                          if iid in run.instances and run.instances[iid].step is not Step.PENDING)
            reimages = driver.reimage_count(self.sid, iid)
            assert reimages <= touched, \
                f"instance {iid} reimaged {reimages} times by {touched} runs"

    def _data_disks_survive(self, records: Mapping[str, object]) -> None:
        driver = self.world.driver
        present = set(driver.instance_ids(self.sid))
        for iid in present:
            assert iid not in self.deleted, f"instance {iid} came back after deletion"
            disks = driver.data_disks(self.sid, iid)
            assert disks, f"instance {iid} has no data disk"
            first = self.data_disks.setdefault(iid, disks)
            assert disks == first, f"instance {iid}: data disks {first} -> {disks}"
        self.deleted |= set(self.data_disks) - present
        for iid, record in records.items():
            if iid in present:
                ids = tuple(d.disk_id for d in record.data_disks)  # type: ignore[attr-defined]
                seen = driver.observe(self.sid, self.world.clock.now()).instances[iid]
                assert ids == seen.data_disk_ids

    def _history_is_bounded_and_newest_first(self) -> None:
        history = views.os_upgrade_history(self.store, scale_set_id=self.sid,
                                           now=self.world.clock.now())
        assert len(history) <= 5
        starts = [h.properties.running_status.start_time for h in history]
        assert all(s is not None for s in starts)
        assert starts == sorted(starts, reverse=True)  # type: ignore[type-var]


EngineMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineStateMachine = EngineMachine.TestCase
