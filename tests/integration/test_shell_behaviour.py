"""What the reconciler does on its own, and what users see of it.

Each test drives a small world (store, virtual clock, simulated driver) through
the real shell and commands, on SQLite and on PostgreSQL when one is configured.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scaleset.errors import NotFound, OperationNotAllowed
from scaleset.model.instance import InstanceRecord
from scaleset.reconcile import commands, views
from scaleset.reconcile.loop import run_until
from scaleset.store.repository import Store
from scaleset.upgrade.run import UPGRADED_UNHEALTHY
from scaleset.upgrade.state import Run, RunKind, RunStatus, StartedBy, Step
from tests.support import World


# -- helpers -------------------------------------------------------------------------
def records(world: World, sid: str) -> dict[str, InstanceRecord]:
    with world.store.transaction() as tx:
        return tx.instances(sid)


def active(world: World, sid: str) -> Run | None:
    with world.store.transaction() as tx:
        return tx.active_run(sid)


def image_versions(world: World, sid: str) -> dict[str, str | None]:
    return {iid: r.image_version for iid, r in records(world, sid).items()}


def run_until_true(world: World, sid: str, condition: Callable[[], bool]) -> None:
    """Run passes on the virtual clock until ``condition()`` holds (checked after each round)."""
    run_until(world.reconciler, world.clock, world.driver, [sid],
              done=lambda _results: condition(), max_rounds=10_000)
    assert condition(), "the world went quiet before the condition held"


def pass_once(world: World, sid: str, times: int = 1) -> None:
    for _ in range(times):
        world.reconciler.reconcile(sid)


def batch_of(run: Run) -> list[list[str]]:
    return [list(b.instance_ids) for b in run.batches]


# -- the automatic trigger -------------------------------------------------------------
def test_publishing_a_newer_version_starts_a_platform_run_on_its_own(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=4)
    assert active(world, sid) is None

    world.publish("1.1.0")
    pass_once(world, sid)

    run = active(world, sid)
    assert run is not None
    assert run.kind is RunKind.OS_IMAGE
    assert run.started_by is StartedBy.PLATFORM
    assert run.target.image_version == "1.1.0"
    world.settle(sid)
    assert world.run(run.run_id).status is RunStatus.COMPLETED
    assert set(image_versions(world, sid).values()) == {"1.1.0"}


def test_publishing_a_newer_version_starts_nothing_when_automatic_upgrade_is_off(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=4, automatic=False)
    world.publish("1.1.0")
    pass_once(world, sid, times=3)

    assert active(world, sid) is None
    with pytest.raises(NotFound):
        views.latest_rolling_upgrade(store, scale_set_id=sid)
    assert set(image_versions(world, sid).values()) == {"1.0.0"}


def test_a_faulted_automatic_run_is_not_retried_for_the_same_version(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    pass_once(world, sid)
    first = active(world, sid)
    assert first is not None and first.started_by is StartedBy.PLATFORM
    world.settle(sid)
    assert world.run(first.run_id).status is RunStatus.FAULTED

    pass_once(world, sid, times=5)
    world.clock.advance(world.settings.health_timeout * 10)
    pass_once(world, sid, times=2)

    assert active(world, sid) is None
    latest = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    assert latest["properties"]["runningStatus"]["code"] == "Faulted"
    assert len(views.os_upgrade_history(store, scale_set_id=sid, now=world.clock.now())) == 1


def test_a_newer_version_after_a_faulted_automatic_run_starts_a_new_run(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    world.settle(sid)  # the trigger starts the run and it faults on the bad image

    world.publish("1.2.0")
    pass_once(world, sid)

    second = active(world, sid)
    assert second is not None
    assert second.started_by is StartedBy.PLATFORM
    assert second.target.image_version == "1.2.0"
    world.settle(sid)
    assert world.run(second.run_id).status is RunStatus.COMPLETED
    assert set(image_versions(world, sid).values()) == {"1.2.0"}


def test_a_manual_start_after_a_faulted_automatic_run_starts_a_user_run(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    world.settle(sid)
    [faulted] = views.os_upgrade_history(store, scale_set_id=sid, now=world.clock.now())
    assert faulted.to_wire()["properties"]["runningStatus"]["code"] == "Faulted"

    run = world.start_upgrade(sid)

    assert run.started_by is StartedBy.USER
    assert run.target.image_version == "1.1.0"
    assert active(world, sid) is not None
    world.settle(sid)
    assert len(views.os_upgrade_history(store, scale_set_id=sid, now=world.clock.now())) == 2


# -- commands against a run ------------------------------------------------------------
def test_starting_an_upgrade_while_one_is_active_is_not_allowed(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=4, automatic=False)
    world.publish("1.1.0")
    first = world.start_upgrade(sid)

    with pytest.raises(OperationNotAllowed) as caught:
        world.start_upgrade(sid)

    assert caught.value.status == 409
    assert "vmss1" in caught.value.message
    still = active(world, sid)
    assert still is not None and still.run_id == first.run_id


def test_cancelling_without_an_active_run_is_not_allowed_and_names_the_scale_set(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=2)

    with pytest.raises(OperationNotAllowed) as caught:
        commands.cancel(store, scale_set_id=sid, now=world.clock.now())

    assert "'vmss1'" in caught.value.message
    assert caught.value.code == "OperationNotAllowed"


def test_a_cancelled_run_stops_after_its_current_batch(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10, automatic=False)
    world.publish("1.1.0")
    run = world.start_upgrade(sid)
    pass_once(world, sid)  # first batch under way

    commands.cancel(store, scale_set_id=sid, now=world.clock.now())
    world.settle(sid)

    final = world.run(run.run_id)
    assert final.status is RunStatus.CANCELLED
    assert len(final.batches) == 1
    upgraded = {iid for iid, v in image_versions(world, sid).items() if v == "1.1.0"}
    assert upgraded == set(final.batches[0].instance_ids)


# -- membership during and after runs ------------------------------------------------
def test_scale_out_during_a_run_lands_on_the_target_image_and_is_not_pending(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10, automatic=False)
    world.publish("1.1.0")
    run = world.start_upgrade(sid)
    pass_once(world, sid)
    before = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    pending_before = before["properties"]["progress"]["pendingInstanceCount"]
    assert pending_before == 8

    commands.set_capacity(store, scale_set_id=sid, capacity=14, now=world.clock.now())
    pass_once(world, sid)

    new = {iid: r for iid, r in records(world, sid).items() if int(iid) >= 10}
    assert sorted(new, key=int) == ["10", "11", "12", "13"]
    assert {r.image_version for r in new.values()} == {"1.1.0"}
    snapshot = world.driver.observe(sid, world.clock.now())
    assert {snapshot.instances[i].image_version for i in new} == {"1.1.0"}
    during = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    assert during["properties"]["progress"]["pendingInstanceCount"] == pending_before

    world.settle(sid)
    final = world.run(run.run_id)
    assert final.status is RunStatus.COMPLETED
    assert set(final.instances) == {str(i) for i in range(10)}
    assert set(image_versions(world, sid).values()) == {"1.1.0"}
    assert all(world.driver.reimage_count(sid, i) == 0 for i in new)


def test_scale_in_removes_the_highest_ids_but_never_protected_instances(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=6)
    commands.set_protection(store, scale_set_id=sid, instance_id="5", protect_from_scale_in=True,
                            protect_from_scale_set_actions=False, now=world.clock.now())
    commands.set_protection(store, scale_set_id=sid, instance_id="3", protect_from_scale_in=True,
                            protect_from_scale_set_actions=False, now=world.clock.now())

    commands.set_capacity(store, scale_set_id=sid, capacity=3, now=world.clock.now())
    pass_once(world, sid)

    assert sorted(records(world, sid), key=int) == ["0", "3", "5"]
    assert sorted(world.driver.instance_ids(sid), key=int) == ["0", "3", "5"]

    commands.set_capacity(store, scale_set_id=sid, capacity=2, now=world.clock.now())
    pass_once(world, sid)
    assert sorted(records(world, sid), key=int) == ["3", "5"]


def test_scale_out_after_a_completed_run_creates_instances_on_the_new_version(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=3)
    world.publish("1.1.0")
    world.settle(sid)
    assert set(image_versions(world, sid).values()) == {"1.1.0"}

    commands.set_capacity(store, scale_set_id=sid, capacity=5, now=world.clock.now())
    pass_once(world, sid)

    assert image_versions(world, sid)["3"] == "1.1.0"
    assert image_versions(world, sid)["4"] == "1.1.0"
    snapshot = world.driver.observe(sid, world.clock.now())
    assert snapshot.instances["4"].image_version == "1.1.0"
    world.settle(sid)
    assert active(world, sid) is None  # nothing is behind, so no new run starts


def test_instances_protected_from_scale_set_actions_are_never_upgraded(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10, automatic=False)
    commands.set_protection(store, scale_set_id=sid, instance_id="3", protect_from_scale_in=False,
                            protect_from_scale_set_actions=True, now=world.clock.now())
    world.publish("1.1.0")
    run = world.start_upgrade(sid)
    assert "3" not in run.instances
    pass_once(world, sid)  # first batch under way; "9" is still pending
    assert world.run(run.run_id).instances["9"].step is Step.PENDING
    commands.set_protection(store, scale_set_id=sid, instance_id="9", protect_from_scale_in=False,
                            protect_from_scale_set_actions=True, now=world.clock.now())

    world.settle(sid)

    final = world.run(run.run_id)
    assert final.status is RunStatus.COMPLETED
    versions = image_versions(world, sid)
    assert versions["3"] == "1.0.0" and versions["9"] == "1.0.0"
    assert {v for iid, v in versions.items() if iid not in ("3", "9")} == {"1.1.0"}
    assert world.driver.reimage_count(sid, "3") == 0
    assert world.driver.reimage_count(sid, "9") == 0
    assert all("9" not in b.instance_ids for b in final.batches)


@pytest.mark.parametrize("cross_zone", [False, True])
def test_batches_mix_zones_only_with_cross_zone_upgrade(store: Store, cross_zone: bool) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=9, zones=["1", "2", "3"], automatic=False,
                              policy={"maxBatchInstancePercent": 50,
                                      "maxUnhealthyInstancePercent": 50,
                                      "enableCrossZoneUpgrade": cross_zone})
    zone = {iid: r.zone or "" for iid, r in records(world, sid).items()}
    assert set(zone.values()) == {"1", "2", "3"}
    world.publish("1.1.0")
    run = world.start_upgrade(sid)
    world.settle(sid)

    final = world.run(run.run_id)
    assert final.status is RunStatus.COMPLETED
    zones_per_batch = [{zone[i] for i in batch} for batch in batch_of(final)]
    if cross_zone:
        assert any(len(z) > 1 for z in zones_per_batch)
    else:
        assert all(len(z) == 1 for z in zones_per_batch)
        assert [next(iter(z)) for z in zones_per_batch] == sorted(
            next(iter(z)) for z in zones_per_batch)
    assert sorted(i for b in batch_of(final) for i in b) == sorted(zone)


# -- OS disks ------------------------------------------------------------------------
def test_previous_os_disks_are_kept_during_a_run_and_released_once_none_is_active(
        store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10, automatic=False)
    world.publish("1.1.0")
    run = world.start_upgrade(sid)  # a User run: failed instances are not rolled back

    def kept() -> set[str]:
        snapshot = world.driver.observe(sid, world.clock.now())
        return {iid for iid, i in snapshot.instances.items() if i.previous_os_disk_id}

    run_until_true(world, sid, lambda: bool(kept()))
    assert kept() <= set(world.run(run.run_id).batches[0].instance_ids)

    world.settle(sid)

    assert world.run(run.run_id).status is RunStatus.FAULTED
    assert kept() == set()
    pass_once(world, sid)
    assert {r.previous_os_disk_id for r in records(world, sid).values()} == {None}


# -- what users read -------------------------------------------------------------------
def test_history_lists_runs_newest_first_in_arm_shape(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    world.settle(sid)  # Platform, Faulted, two instances rolled back
    world.publish("1.2.0")
    world.settle(sid)  # Platform, Completed
    world.publish("1.3.0")
    world.start_upgrade(sid)  # User, before the trigger gets a pass
    world.settle(sid)

    items = [h.to_wire() for h in views.os_upgrade_history(store, scale_set_id=sid,
                                                          now=world.clock.now())]

    props = [i["properties"] for i in items]
    assert [p["startedBy"] for p in props] == ["User", "Platform", "Platform"]
    assert [p["targetImageReference"]["version"] for p in props] == ["1.3.0", "1.2.0", "1.1.0"]
    assert [p["runningStatus"]["code"] for p in props] == ["Completed", "Completed", "Faulted"]
    starts = [p["runningStatus"]["startTime"] for p in props]
    assert starts == sorted(starts, reverse=True)
    assert props[0]["targetImageReference"]["publisher"] == "Canonical"
    assert props[0]["progress"] == {"successfulInstanceCount": 10, "failedInstanceCount": 0,
                                    "inProgressInstanceCount": 0, "pendingInstanceCount": 0}
    assert props[0]["rollbackInfo"] == {"successfullyRolledbackInstanceCount": 0,
                                        "failedRolledbackInstanceCount": 0}
    assert props[2]["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 2
    assert props[2]["progress"]["failedInstanceCount"] == 2
    assert props[2]["progress"]["pendingInstanceCount"] == 8
    assert props[2]["error"]["code"] == UPGRADED_UNHEALTHY


def test_latest_rolling_upgrade_is_not_found_before_any_run_then_shows_the_latest(
        store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=4)
    with pytest.raises(NotFound):
        views.latest_rolling_upgrade(store, scale_set_id=sid)

    world.publish("1.1.0")
    pass_once(world, sid)
    running = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    assert running["id"] == f"{sid}/rollingUpgrades/latest"
    assert running["properties"]["runningStatus"]["code"] == "RollingForward"
    assert running["properties"]["runningStatus"]["lastAction"] == "Start"

    world.settle(sid)
    done = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    assert done["properties"]["runningStatus"]["code"] == "Completed"
    assert "endTime" in done["properties"]["runningStatus"]
    assert done["properties"]["progress"]["successfulInstanceCount"] == 4
    assert done["properties"]["policy"]["maxBatchInstancePercent"] == 20


def test_data_disks_survive_reimage_and_rollback(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    before = {iid: world.driver.data_disks(sid, iid) for iid in world.driver.instance_ids(sid)}
    assert all(disks for disks in before.values())

    world.publish("1.1.0")
    world.settle(sid)  # the first batch is reimaged onto the bad image and rolled back
    rolled_back = [iid for iid in before if world.driver.rollback_count(sid, iid)]
    assert len(rolled_back) == 2
    assert {iid: world.driver.data_disks(sid, iid) for iid in before} == before

    world.publish("1.2.0")
    world.settle(sid)
    assert all(world.driver.reimage_count(sid, iid) >= 1 for iid in before)
    assert {iid: world.driver.data_disks(sid, iid) for iid in before} == before
    assert {iid: [d.disk_id for d in r.data_disks] for iid, r in records(world, sid).items()} == {
        iid: [f"vmss1_{iid}_disk0"] for iid in before}
