"""Instances and runs as ARM shows them."""

from scaleset.reconcile import commands, views
from scaleset.store.repository import Store
from scaleset.upgrade.state import StartedBy
from tests.support import World, scale_set_model


def test_an_instance_reads_like_an_arm_scale_set_vm(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=3, zones=["1", "2"])
    commands.set_protection(store, scale_set_id=sid, instance_id="1", protect_from_scale_in=True,
                            protect_from_scale_set_actions=False, now=world.clock.now())
    world.reconciler.reconcile(sid)
    with store.transaction() as tx:
        row = tx.get_scale_set(sid)
        records = tx.instances(sid)
    assert row is not None
    body = views.instance_resource(row, records["1"], expand_instance_view=True).to_wire()
    assert body["instanceId"] == "1"
    assert body["zones"] == ["2"]
    assert body["type"] == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    props = body["properties"]
    assert props["latestModelApplied"] is True
    assert props["protectionPolicy"] == {"protectFromScaleIn": True,
                                         "protectFromScaleSetActions": False}
    assert props["storageProfile"]["imageReference"]["version"] == "latest"
    assert props["storageProfile"]["imageReference"]["exactVersion"] == "1.0.0"
    assert [d["lun"] for d in props["storageProfile"]["dataDisks"]] == [0]
    view = props["instanceView"]
    assert {"platformUpdateDomain", "platformFaultDomain"} <= view.keys()
    assert "PowerState/running" in [s["code"] for s in view["statuses"]]
    assert view["vmHealth"]["status"]["code"] == "HealthState/healthy"
    assert "instanceView" not in views.instance_resource(row, records["1"]).to_wire()[
        "properties"]


def test_a_model_change_shows_as_latest_model_not_applied(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=2, mode="Manual")
    changed = scale_set_model(capacity=2, mode="Manual")
    raw = changed.model_dump(by_alias=True, exclude_none=True)
    raw["properties"]["virtualMachineProfile"]["osProfile"] = {"customData": "ZWNobyBoaQ=="}
    commands.update_scale_set(store, scale_set_id=sid, model=type(changed).model_validate(raw),
                              now=world.clock.now())
    world.reconciler.reconcile(sid)
    with store.transaction() as tx:
        row = tx.get_scale_set(sid)
        records = tx.instances(sid)
    assert row is not None and row.generation == 2
    flags = {iid: views.instance_resource(row, r).to_wire()["properties"]["latestModelApplied"]
             for iid, r in records.items()}
    assert flags == {"0": False, "1": False}
    commands.manual_upgrade(store, scale_set_id=sid, instance_ids=["0"], now=world.clock.now())
    world.settle(sid)
    with store.transaction() as tx:
        row = tx.get_scale_set(sid)
        records = tx.instances(sid)
    assert row is not None
    flags = {iid: views.instance_resource(row, r).to_wire()["properties"]["latestModelApplied"]
             for iid, r in records.items()}
    assert flags == {"0": True, "1": False}


def test_history_lists_the_rolling_upgrade_in_the_seed_shape(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    world.start_upgrade(sid, StartedBy.PLATFORM)
    world.settle(sid)
    items = [h.to_wire() for h in views.os_upgrade_history(store, scale_set_id=sid,
                                                          now=world.clock.now())]
    assert len(items) == 1
    item = items[0]
    assert item["type"] == "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"
    assert item["location"] == "westus"
    props = item["properties"]
    assert props["runningStatus"]["code"] == "Faulted"
    assert {"startTime", "endTime"} <= props["runningStatus"].keys()
    assert props["startedBy"] == "Platform"
    assert props["targetImageReference"]["version"] == "1.1.0"
    assert props["progress"] == {"successfulInstanceCount": 0, "failedInstanceCount": 2,
                                 "inProgressInstanceCount": 0, "pendingInstanceCount": 8}
    assert props["rollbackInfo"] == {"successfullyRolledbackInstanceCount": 2,
                                     "failedRolledbackInstanceCount": 0}
    assert props["error"]["code"] == (
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade")
