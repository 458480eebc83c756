"""What starts a run on its own, and what does not."""

from scaleset.reconcile import commands
from scaleset.store.repository import Store
from scaleset.upgrade.state import RunStatus, StartedBy
from tests.support import World


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
