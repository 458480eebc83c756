from scaleset.store.repository import Store
from scaleset.upgrade.state import RunStatus, StartedBy
from tests.support import World


def test_a_platform_run_moves_every_instance_to_the_new_version(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=10)
    world.publish("1.1.0")
    run = world.start_upgrade(sid, StartedBy.PLATFORM)
    world.settle(sid)
    final = world.run(run.run_id)
    assert final.status is RunStatus.COMPLETED
    with store.transaction() as tx:
        versions = {r.image_version for r in tx.instances(sid).values()}
    assert versions == {"1.1.0"}
