"""Changing a scale set's model, and how the change reaches its instances per upgrade mode."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.instance import HealthState, InstanceRecord
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import commands, views
from scaleset.store.repository import ScaleSetRow, Store
from scaleset.upgrade.run import BEFORE_ROLLING_UPGRADE
from scaleset.upgrade.state import Run, RunKind, RunStatus, StartedBy
from tests.support import World, scale_set_model

EXTENSION: dict[str, Any] = {
    "name": "app",
    "properties": {"publisher": "Contoso", "type": "CustomScript", "typeHandlerVersion": "2.1",
                   "settings": {"commandToExecute": "./install.sh v1"}},
}


def model(*, mode: str = "Manual", capacity: int = 10, command: str = "./install.sh v1",
          custom_data: str | None = None, policy: dict[str, Any] | None = None) -> ScaleSet:
    """The test scale set with one extension (and optionally custom data)."""
    base = scale_set_model(capacity=capacity, mode=mode, automatic=False, policy=policy)
    raw = base.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
    profile = raw["properties"]["virtualMachineProfile"]
    extension = {**EXTENSION, "properties": {**EXTENSION["properties"],
                                             "settings": {"commandToExecute": command}}}
    profile["extensionProfile"] = {"extensions": [extension]}
    if custom_data is not None:
        profile["osProfile"] = {"customData": base64.b64encode(custom_data.encode()).decode()}
    return ScaleSet.model_validate(raw)


def create(world: World, scale_set: ScaleSet) -> str:
    sid = "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/" \
          "microsoft.compute/virtualmachinescalesets/vmss1"
    commands.create_scale_set(world.store, scale_set_id=sid, model=scale_set, now=world.clock.now())
    world.reconciler.reconcile(sid)
    return sid


def update(world: World, sid: str, scale_set: ScaleSet) -> ScaleSetRow:
    return commands.update_scale_set(world.store, scale_set_id=sid, model=scale_set,
                                     now=world.clock.now())


def state(world: World, sid: str) -> tuple[ScaleSetRow, dict[str, InstanceRecord]]:
    with world.store.transaction() as tx:
        row = tx.get_scale_set(sid)
        assert row is not None
        return row, tx.instances(sid)


def applied(world: World, sid: str) -> dict[str, bool]:
    """``latestModelApplied`` of every instance."""
    row, records = state(world, sid)
    return {iid: r.latest_model_applied(row.generation) for iid, r in records.items()}


def latest_run(world: World, sid: str) -> Run:
    with world.store.transaction() as tx:
        [summary] = tx.run_summaries(sid, limit=1)
        return tx.get_run(summary.run.run_id)


# -- what bumps the generation ---------------------------------------------------------
@pytest.mark.parametrize("change", ["extension setting", "customData"])
def test_an_instance_facing_change_bumps_the_generation_and_leaves_instances_behind(
        store: Store, change: str) -> None:
    world = World.create(store)
    sid = create(world, model(custom_data="echo v1"))
    assert set(applied(world, sid).values()) == {True}

    changed = (model(command="./install.sh v2", custom_data="echo v1")
               if change == "extension setting" else model(custom_data="echo v2"))
    row = update(world, sid, changed)
    world.reconciler.reconcile(sid)

    assert row.generation == 2
    _, records = state(world, sid)
    assert {r.model_generation for r in records.values()} == {1}
    assert all(r.model_generation < row.generation for r in records.values())
    assert set(applied(world, sid).values()) == {False}


def test_capacity_or_upgrade_policy_changes_do_not_bump_the_generation(store: Store) -> None:
    world = World.create(store)
    sid = create(world, model(capacity=4))

    assert update(world, sid, model(capacity=6)).generation == 1
    assert update(world, sid, model(capacity=6, policy={"maxBatchInstancePercent": 50,
                                                        "maxUnhealthyInstancePercent": 50,
                                                        "pauseTimeBetweenBatches": "PT1M"})
                  ).generation == 1
    assert update(world, sid, model(capacity=6, mode="Rolling")).generation == 1
    row = commands.set_capacity(store, scale_set_id=sid, capacity=5, now=world.clock.now())
    assert row.generation == 1
    world.settle(sid)
    assert set(applied(world, sid).values()) == {True}
    assert len(applied(world, sid)) == 5
    with pytest.raises(NotFound):
        views.latest_rolling_upgrade(store, scale_set_id=sid)


# -- how the change rolls out, by upgrade mode ----------------------------------------
def test_automatic_mode_applies_a_new_model_to_every_instance_at_once(store: Store) -> None:
    world = World.create(store)
    sid = create(world, model(mode="Automatic"))
    update(world, sid, model(mode="Automatic", command="./install.sh v2", custom_data="echo hi"))

    world.settle(sid)

    run = latest_run(world, sid)
    assert run.kind is RunKind.MODEL
    assert run.started_by is StartedBy.PLATFORM
    assert run.status is RunStatus.COMPLETED
    assert len(run.batches) == 1
    assert sorted(run.batches[0].instance_ids, key=int) == [str(i) for i in range(10)]
    assert set(applied(world, sid).values()) == {True}
    assert all(world.driver.custom_data_runs(sid, str(i)) == 1 for i in range(10))
    assert all(world.driver.provisioned_extensions(sid, str(i)) == ("app",) for i in range(10))
    # A model run is a rolling upgrade, but not an OS upgrade.
    latest = views.latest_rolling_upgrade(store, scale_set_id=sid).to_wire()
    assert latest["properties"]["runningStatus"]["code"] == "Completed"
    assert views.os_upgrade_history(store, scale_set_id=sid, now=world.clock.now()) == []


def test_rolling_mode_applies_a_new_model_in_batches(store: Store) -> None:
    world = World.create(store)
    sid = create(world, model(mode="Rolling", policy={"maxBatchInstancePercent": 20}))
    update(world, sid, model(mode="Rolling", command="./install.sh v2",
                             policy={"maxBatchInstancePercent": 20}))

    world.settle(sid)

    run = latest_run(world, sid)
    assert run.kind is RunKind.MODEL
    assert run.status is RunStatus.COMPLETED
    assert [len(b.instance_ids) for b in run.batches] == [2, 2, 2, 2, 2]
    starts = [b.start for b in run.batches]
    ends = [b.end for b in run.batches]
    assert all(end is not None for end in ends)
    assert all(end is not None and nxt >= end
               for end, nxt in zip(ends, starts[1:], strict=False))
    assert set(applied(world, sid).values()) == {True}


def test_rolling_mode_model_runs_obey_the_unhealthy_gate(store: Store) -> None:
    world = World.create(store)
    sid = create(world, model(mode="Rolling"))
    for iid in ("1", "4", "7"):
        world.driver.set_health(sid, iid, HealthState.UNHEALTHY)
    update(world, sid, model(mode="Rolling", command="./install.sh v2"))

    world.settle(sid)

    run = latest_run(world, sid)
    assert run.kind is RunKind.MODEL
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == BEFORE_ROLLING_UPGRADE
    assert run.batches == ()
    assert set(applied(world, sid).values()) == {False}
    # The generation is not retried on its own.
    world.reconciler.reconcile(sid)
    assert latest_run(world, sid).run_id == run.run_id


def test_manual_mode_changes_nothing_until_named_instances_are_upgraded(store: Store) -> None:
    world = World.create(store)
    sid = create(world, model(mode="Manual"))
    update(world, sid, model(mode="Manual", command="./install.sh v2"))

    world.settle(sid)
    world.clock.advance(world.settings.health_timeout * 10)
    world.settle(sid)

    with pytest.raises(NotFound):
        views.latest_rolling_upgrade(store, scale_set_id=sid)
    assert set(applied(world, sid).values()) == {False}
    assert all(world.driver.reimage_count(sid, str(i)) == 0 for i in range(10))

    run = commands.manual_upgrade(store, scale_set_id=sid, instance_ids=["2", "7"],
                                  now=world.clock.now())
    assert run.started_by is StartedBy.USER
    world.settle(sid)

    assert latest_run(world, sid).status is RunStatus.COMPLETED
    flags = applied(world, sid)
    assert {iid for iid, ok in flags.items() if ok} == {"2", "7"}
    assert {iid for iid in flags if world.driver.reimage_count(sid, iid)} == {"2", "7"}


def test_pinning_a_newer_version_rolls_instances_onto_it_in_batches(store: Store) -> None:
    from tests.support import scale_set_id

    world = World.create(store)
    world.publish("1.1.0")
    sid = scale_set_id("pinned")

    def pinned(version: str) -> ScaleSet:
        raw = scale_set_model("pinned", capacity=4, mode="Rolling", automatic=False).model_dump(
            by_alias=True, exclude_unset=True, exclude_none=True)
        raw["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"][
            "version"] = version
        return ScaleSet.model_validate(raw)

    commands.create_scale_set(store, scale_set_id=sid, model=pinned("1.0.0"),
                              now=world.clock.now())
    world.reconciler.reconcile(sid)
    with pytest.raises(InvalidParameter) as err:
        commands.update_scale_set(store, scale_set_id=sid, model=pinned("9.9.9"),
                                  now=world.clock.now())
    assert "9.9.9" in err.value.message
    commands.update_scale_set(store, scale_set_id=sid, model=pinned("1.1.0"),
                              now=world.clock.now())
    world.settle(sid)
    with store.transaction() as tx:
        (summary,) = tx.run_summaries(sid)
        records = tx.instances(sid)
    assert summary.run.kind is RunKind.MODEL
    assert summary.run.target.image_version == "1.1.0"
    assert summary.run.status is RunStatus.COMPLETED
    assert len(world.run(summary.run.run_id).batches) == 4  # Rolling: one instance a batch
    assert {r.image_version for r in records.values()} == {"1.1.0"}
