"""A write that lands while the shell is deciding is never overwritten by the shell."""

from __future__ import annotations

from scaleset.reconcile import commands
from scaleset.store.repository import Store
from scaleset.upgrade.state import RunStatus, StartedBy
from tests.support import World


def test_a_cancel_committed_mid_pass_is_not_lost(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    run = world.start_upgrade(sid, StartedBy.PLATFORM)
    world.reconciler.reconcile(sid)  # the first batch starts
    assert len(world.run(run.run_id).batches) == 1
    fired: list[str] = []

    def cancel_while_deciding(step: str) -> None:
        if step == "observed" and not fired:
            fired.append(step)
            commands.cancel(store, scale_set_id=sid, now=world.clock.now())

    world.restart(checkpoint=cancel_while_deciding)
    first = world.reconciler.reconcile(sid)
    assert fired == ["observed"]
    assert first.conflict  # the pass saw the revision move and committed nothing
    world.settle(sid)
    final = world.run(run.run_id)
    assert final.status is RunStatus.CANCELLED
    assert final.cancel_requested
    assert len(final.batches) == 1  # the cancel took effect after the first batch


def test_protection_set_mid_pass_is_honoured_by_the_next_batch(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=5)  # batches of one
    world.publish("1.1.0")
    run = world.start_upgrade(sid, StartedBy.PLATFORM)
    done: list[bool] = []

    def protect_while_deciding(step: str) -> None:
        if step == "observed" and not done:
            done.append(True)
            commands.set_protection(store, scale_set_id=sid, instance_id="4",
                                    protect_from_scale_in=False,
                                    protect_from_scale_set_actions=True, now=world.clock.now())

    world.restart(checkpoint=protect_while_deciding)
    world.settle(sid)
    final = world.run(run.run_id)
    assert final.status is RunStatus.COMPLETED
    assert "4" not in final.instances
    assert world.driver.reimage_count(sid, "4") == 0
    with store.transaction() as tx:
        records = tx.instances(sid)
    assert records["4"].protect_from_scale_set_actions  # the shell did not overwrite it
    assert records["4"].image_version == "1.0.0"
