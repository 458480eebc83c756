"""What starts a run on its own, and what does not; when automatic runs start."""

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from scaleset.clock import EPOCH
from scaleset.errors import OperationNotAllowed
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, commands
from scaleset.reconcile.loop import run_until
from scaleset.sim.runner import simulate
from scaleset.sim.scenario import Scenario
from scaleset.store.repository import Store
from scaleset.upgrade import timing
from scaleset.upgrade.state import Run, RunStatus, StartedBy
from scaleset.upgrade.timing import PRESETS, RolloutTiming
from tests.support import World, scale_set_id, scale_set_model


def test_a_cancelled_manual_run_is_not_restarted_by_the_platform(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10, automatic=True)
    world.publish("1.1.0")
    run = world.start_upgrade(sid, StartedBy.USER)
    world.reconciler.reconcile(sid)
    commands.cancel(store, scale_set_id=sid, now=world.clock.now())
    world.settle(sid)
    assert world.run(run.run_id).status is RunStatus.CANCELLED
    for _ in range(3):  # more passes: the platform must not pick 1.1.0 up again
        world.reconciler.reconcile(sid)
    with store.transaction() as tx:
        assert tx.active_run(sid) is None
        assert len(tx.past_runs(sid)) == 1
    world.publish("1.2.0")  # a newer version does start a Platform run
    world.reconciler.reconcile(sid)
    with store.transaction() as tx:
        active = tx.active_run(sid)
    assert active is not None and active.started_by is StartedBy.PLATFORM
    assert active.target.image_version == "1.2.0"


def test_an_image_the_operator_withdrew_from_the_allow_list_is_not_rolled_out(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=4, automatic=True)  # Canonical:UbuntuServer:18.04-LTS
    # The server restarts with an allow-list that no longer has the scale set's image.
    world.settings = dataclasses.replace(world.settings, auto_upgrade_images=())
    world.restart()
    world.publish("1.1.0")
    for _ in range(3):
        assert world.reconciler.reconcile(sid).active_run_id is None
    with store.transaction() as tx:
        assert tx.past_runs(sid) == []
    run = world.start_upgrade(sid, StartedBy.USER)  # the user can still upgrade by hand
    world.settle(sid)
    assert world.run(run.run_id).status is RunStatus.COMPLETED


# -- delays, windows, deferral: on the virtual clock, through the real shell and store -------
FIRST_DELAY = timedelta(hours=3)


def timed_world(store: Store, rollout: RolloutTiming) -> World:
    """A world whose shell paces automatic runs with ``rollout``."""
    world = World.create(store)
    world.settings = dataclasses.replace(world.settings, rollout_timing=rollout)
    world.restart()
    return world


def add_scale_set(world: World, name: str = "vmss1", **automatic_policy: Any) -> str:
    """A scale set with automatic OS upgrade and extra ``automaticOSUpgradePolicy`` fields."""
    body = scale_set_model(name, **{k: v for k, v in automatic_policy.items()
                                    if k in ("capacity", "policy")}).to_wire()
    auto = body["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"]
    auto.update({k: v for k, v in automatic_policy.items() if k not in ("capacity", "policy")})
    sid = scale_set_id(name)
    commands.create_scale_set(world.store, scale_set_id=sid,
                              model=ScaleSet.model_validate(body), now=world.clock.now())
    world.reconciler.reconcile(sid)
    return sid


def until_a_run_starts(world: World, sid: str) -> Run:
    """Passes on the virtual clock, jumping to each wake-up, until a run is active."""
    result = run_until(world.reconciler, world.clock, world.driver, [sid],
                       done=lambda last: last[sid].active_run_id is not None)
    run_id = result.last[sid].active_run_id
    assert run_id is not None, "no run started"
    return world.run(run_id)


def events(world: World, sid: str, kind: str) -> list[dict[str, Any]]:
    with world.store.transaction() as tx:
        return [e for e in tx.events(sid) if e["kind"] == kind]


def test_the_first_rollout_waits_first_rollout_delay_after_configuration(store: Store) -> None:
    world = timed_world(store, RolloutTiming(first_rollout_delay=FIRST_DELAY))
    configured = world.clock.now()
    sid = add_scale_set(world)
    world.clock.advance(timedelta(minutes=10))
    world.publish("1.1.0")
    result = world.reconciler.reconcile(sid)
    assert result.active_run_id is None
    assert result.wake_at == configured + FIRST_DELAY  # the loop sleeps exactly that long
    [scheduled] = events(world, sid, automatic.SCHEDULED)
    assert scheduled["data"]["startsAt"] == "2026-01-01T03:00:00Z"
    run = until_a_run_starts(world, sid)
    assert run.start_time == configured + FIRST_DELAY
    assert run.started_by is StartedBy.PLATFORM and run.target.image_version == "1.1.0"
    assert run.rollback_on_failure
    assert len(events(world, sid, automatic.SCHEDULED)) == 1  # recorded once, not every pass


def test_a_later_rollout_waits_the_rollout_delay_plus_its_jitter(store: Store) -> None:
    world = timed_world(store, PRESETS["azure"])
    sid = add_scale_set(world)
    world.publish("1.1.0")
    first = until_a_run_starts(world, sid)
    assert first.start_time - EPOCH == FIRST_DELAY
    world.settle(sid)
    world.clock.advance(timedelta(days=1))
    published = world.clock.now()
    world.publish("1.2.0")
    later = until_a_run_starts(world, sid)
    jitter = timing.jitter(sid, "1.2.0", timedelta(minutes=30))
    assert later.start_time == published + timedelta(minutes=30) + jitter
    assert timedelta(minutes=30) <= later.start_time - published <= timedelta(minutes=60)
    assert later.target.image_version == "1.2.0"


def test_a_version_published_during_a_run_waits_for_it_then_starts(store: Store) -> None:
    world = timed_world(store, RolloutTiming(rollout_delay=timedelta(minutes=10)))
    sid = add_scale_set(world, policy={"pauseTimeBetweenBatches": "PT10M"})
    world.publish("1.1.0")
    first = until_a_run_starts(world, sid)
    world.clock.advance(timedelta(minutes=1))
    world.reconciler.reconcile(sid)
    published = world.clock.now()
    world.publish("1.2.0")
    second = until_a_run_starts_after(world, sid, first.run_id)
    first = world.run(first.run_id)
    assert first.status is RunStatus.COMPLETED and first.end_time is not None
    assert first.target.image_version == "1.1.0"  # the run in progress kept its target
    # 1.2.0 was due 10 minutes after publish, long before the first run ended; it
    # waited for that run, then started at once.
    assert first.end_time > published + timedelta(minutes=10)
    assert second.target.image_version == "1.2.0"
    assert second.start_time == first.end_time


def until_a_run_starts_after(world: World, sid: str, previous: str) -> Run:
    result = run_until(world.reconciler, world.clock, world.driver, [sid],
                       done=lambda last: last[sid].active_run_id not in (None, previous))
    run_id = result.last[sid].active_run_id
    assert run_id is not None
    return world.run(run_id)


SATURDAY_NIGHT_BERLIN = {"daysOfWeek": ["Saturday"], "startTime": "02:00", "duration": "PT1H",
                         "timeZone": "Europe/Berlin"}


def test_a_maintenance_window_holds_a_due_run_until_it_opens(store: Store) -> None:
    world = timed_world(store, RolloutTiming())
    sid = add_scale_set(world, policy={"pauseTimeBetweenBatches": "PT30M"},
                        maintenanceWindows=[SATURDAY_NIGHT_BERLIN])
    world.publish("1.1.0")  # Thursday 2026-01-01 00:00 UTC: due at once, outside the window
    opens = datetime(2026, 1, 3, 1, tzinfo=UTC)  # Saturday 02:00 CET
    assert world.reconciler.reconcile(sid).wake_at == opens
    run = until_a_run_starts(world, sid)
    assert run.start_time == opens
    world.settle(sid)
    run = world.run(run.run_id)
    # Started inside the window, it ran to its end after the window closed.
    assert run.status is RunStatus.COMPLETED
    assert run.end_time is not None and run.end_time > opens + timedelta(hours=1)


def test_a_deferred_run_waits_for_approval(store: Store) -> None:
    world = timed_world(store, RolloutTiming())
    sid = add_scale_set(world, osRollingUpgradeDeferral=True)
    world.publish("1.1.0")
    for _ in range(3):
        result = world.reconciler.reconcile(sid)
        assert result.active_run_id is None and result.wake_at is None
        world.clock.advance(timedelta(hours=6))
    [deferred] = events(world, sid, automatic.DEFERRED)
    assert deferred["data"]["targetImageVersion"] == "1.1.0"
    run = commands.approve_rolling_upgrade(store, scale_set_id=sid, instance_ids=None,
                                           now=world.clock.now(), settings=world.settings)
    assert run.started_by is StartedBy.PLATFORM and run.rollback_on_failure
    world.settle(sid)
    assert world.run(run.run_id).status is RunStatus.COMPLETED
    with pytest.raises(OperationNotAllowed, match="Nothing to approve"):
        commands.approve_rolling_upgrade(store, scale_set_id=sid, instance_ids=None,
                                         now=world.clock.now(), settings=world.settings)


def test_a_simulated_scenario_can_let_the_trigger_start_the_run() -> None:
    paced = simulate(Scenario.model_validate(
        {"rolloutTiming": {"preset": "azure", "firstRolloutDelay": "PT1H"}}))
    # A first rollout: max(1 h after configuration, 30 min + jitter (<= 30 min) after publish).
    assert (paced.status, paced.started_by) == ("Completed", "Platform")
    assert paced.trigger_delay_seconds == 3600
    assert paced.to_json()["triggerDelaySeconds"] == 3600
    assert simulate(Scenario.model_validate(
        {"rolloutTiming": {"rolloutDelay": "PT10M"}})).trigger_delay_seconds == 600
    assert simulate(Scenario()).trigger_delay_seconds == 0
    with pytest.raises(ValidationError, match="startedBy 'Platform'"):
        Scenario.model_validate({"startedBy": "User", "rolloutTiming": {}})
