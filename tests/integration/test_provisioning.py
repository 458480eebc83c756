"""Every new OS disk reruns custom data and the extensions, in provisionAfterExtensions order."""

import base64

import pytest

from scaleset.errors import InvalidParameter
from scaleset.reconcile import commands
from scaleset.store.repository import Store
from scaleset.upgrade.state import RunStatus, StartedBy
from tests.support import World, scale_set_id, scale_set_model

EXTENSIONS = {
    "extensionProfile": {"extensions": [
        {"name": "app", "properties": {"publisher": "Microsoft.Azure.Extensions",
                                       "type": "CustomScript",
                                       "provisionAfterExtensions": ["health", "agent"]}},
        {"name": "health", "properties": {"publisher": "Microsoft.ManagedServices",
                                          "type": "ApplicationHealthLinux"}},
        {"name": "agent", "properties": {"publisher": "Contoso", "type": "Agent",
                                         "provisionAfterExtensions": ["health"]}},
    ]},
    "osProfile": {"customData": base64.b64encode(b"#!/bin/sh\necho hello\n").decode()},
}


def _with_profile(name: str, capacity: int, profile: dict) -> object:
    model = scale_set_model(name, capacity=capacity)
    raw = model.model_dump(by_alias=True, exclude_none=True)
    # EXTENSIONS has the Application Health extension: one health signal, not a probe too.
    raw["properties"]["virtualMachineProfile"].pop("networkProfile", None)
    raw["properties"]["virtualMachineProfile"].update(profile)
    return type(model).model_validate(raw)


def _roll_out(world: World, name: str, model: object,
              started_by: StartedBy = StartedBy.PLATFORM) -> RunStatus:
    """Create the scale set, publish 1.1.0, run an upgrade (Platform's) to the end."""
    sid = scale_set_id(name)
    commands.create_scale_set(world.store, scale_set_id=sid, model=model,  # type: ignore[arg-type]
                              now=world.clock.now())
    world.reconciler.reconcile(sid)
    world.publish("1.1.0")
    run = world.start_upgrade(sid, started_by)
    world.settle(sid)
    return world.run(run.run_id).status


def test_an_upgrade_reruns_custom_data_and_extensions_in_sequence(store: Store) -> None:
    world = World.create(store)
    sid = scale_set_id("seq")
    assert _roll_out(world, "seq", _with_profile("seq", 4, EXTENSIONS)) is RunStatus.COMPLETED
    for iid in world.driver.instance_ids(sid):
        assert world.driver.provisioned_extensions(sid, iid) == ("health", "agent", "app")
        assert world.driver.custom_data_runs(sid, iid) == 1  # once on the new disk
        assert world.driver.reimage_count(sid, iid) == 1


@pytest.mark.parametrize(
    ("extensions", "needle"),
    [
        ([{"name": "a", "properties": {"publisher": "p", "type": "t",
                                       "provisionAfterExtensions": ["missing"]}}], "'missing'"),
        ([{"name": "a", "properties": {"publisher": "p", "type": "t",
                                       "provisionAfterExtensions": ["b"]}},
          {"name": "b", "properties": {"publisher": "p", "type": "t",
                                       "provisionAfterExtensions": ["a"]}}], "cycle"),
    ],
)
def test_a_bad_extension_sequence_is_refused_and_nothing_is_stored(
    store: Store, extensions: list, needle: str
) -> None:
    world = World.create(store)
    sid = scale_set_id("bad")
    model = _with_profile("bad", 2, {"extensionProfile": {"extensions": extensions}})
    with pytest.raises(InvalidParameter) as err:
        commands.create_scale_set(store, scale_set_id=sid, model=model, now=world.clock.now())
    assert needle in err.value.message
    assert "provisionAfterExtensions" in err.value.message or "cycle" in err.value.message
    with store.transaction() as tx:
        assert tx.get_scale_set(sid) is None


def test_custom_data_over_64_kib_is_refused(store: Store) -> None:
    world = World.create(store)
    sid = scale_set_id("big")
    big = base64.b64encode(b"x" * (64 * 1024 + 1)).decode()
    model = _with_profile("big", 1, {"osProfile": {"customData": big}})
    with pytest.raises(InvalidParameter) as err:
        commands.create_scale_set(store, scale_set_id=sid, model=model, now=world.clock.now())
    assert err.value.target == "properties.virtualMachineProfile.osProfile.customData"
    assert "65537 bytes" in err.value.message
    with store.transaction() as tx:
        assert tx.get_scale_set(sid) is None


def _without_probe(name: str, capacity: int, extensions: list | None = None,
                   automatic: bool = True) -> object:
    # Rolling mode needs a health signal; without a probe, only the extension gives one.
    model = scale_set_model(name, capacity=capacity, automatic=automatic,
                            mode="Rolling" if extensions else "Manual")
    raw = model.model_dump(by_alias=True, exclude_none=True)
    raw["properties"]["virtualMachineProfile"].pop("networkProfile", None)
    if extensions is not None:
        raw["properties"]["virtualMachineProfile"]["extensionProfile"] = {
            "extensions": extensions}
    return type(model).model_validate(raw)


def test_without_a_health_source_a_running_instance_with_its_extensions_is_healthy(
    store: Store,
) -> None:
    # The application on 1.1.0 never answers, but nothing asks it: Azure's rule is
    # "running with every extension provisioned", so the run completes. Automatic OS
    # upgrade needs a health signal, so this is a scale set without it, upgraded by a user.
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    model = _without_probe("noprobe", 5, automatic=False)
    assert _roll_out(world, "noprobe", model, StartedBy.USER) is RunStatus.COMPLETED


def test_with_the_health_extension_a_bad_image_is_caught(store: Store) -> None:
    world = World.create(store, bad_images=frozenset({"1.1.0"}))
    health = [{"name": "health", "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
        "settings": {"protocol": "http", "port": 80, "requestPath": "/health"}}}]
    assert _roll_out(world, "healthext", _without_probe("healthext", 5, health)) \
        is RunStatus.FAULTED
    with store.transaction() as tx:
        (summary,) = tx.run_summaries(scale_set_id("healthext"))
    assert summary.progress.rolled_back == 1
