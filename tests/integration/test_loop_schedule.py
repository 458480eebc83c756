"""The real-time loop passes over a scale set only when something concerns it.

A doorbell for it (or for everyone), its own timer, a revision moved by another
writer (found by the periodic scan), a change the driver reports, and the slow
full resync each make it due; an idle fleet gets no passes at all.
"""

from __future__ import annotations

from datetime import timedelta

from scaleset.reconcile import commands
from scaleset.server.loop import ReconcileLoop
from scaleset.store.repository import Store
from tests.support import World


class Counting:
    """Wraps the reconciler's ``reconcile`` to record which scale sets got a pass."""

    def __init__(self, world: World) -> None:
        self.passed: list[str] = []
        original = world.reconciler.reconcile

        def counted(sid: str):  # type: ignore[no-untyped-def]
            self.passed.append(sid)
            return original(sid)

        world.reconciler.reconcile = counted  # type: ignore[method-assign]

    def take(self) -> list[str]:
        out, self.passed = self.passed, []
        return out


def _world(store: Store, names: tuple[str, ...] = ("a", "b", "c")) -> tuple[World, list[str]]:
    world = World.create(store)
    return world, [world.add_scale_set(name, capacity=2) for name in names]


def _loop(world: World, store: Store, **kwargs: object) -> ReconcileLoop:
    return ReconcileLoop(reconciler=world.reconciler, store=store, clock=world.clock,
                         driver_changes=world.driver.changes, **kwargs)  # type: ignore[arg-type]


def test_an_idle_fleet_gets_no_passes_after_the_first_round(sqlite_store: Store) -> None:
    world, ids = _world(sqlite_store)
    passes = Counting(world)
    loop = _loop(world, sqlite_store)
    loop.run_once()
    assert sorted(passes.take()) == sorted(ids)  # the first round looks at everyone
    for _ in range(5):
        world.clock.advance(timedelta(seconds=2))  # past the scan, before the full resync
        loop.run_once()
    assert passes.take() == []


def test_a_doorbell_makes_only_its_scale_set_due(sqlite_store: Store) -> None:
    world, (a, b, c) = _world(sqlite_store)
    loop = _loop(world, sqlite_store)
    loop.run_once()
    passes = Counting(world)
    loop.notify(b)
    loop.run_once()
    assert passes.take() == [b]
    loop.notify(None)
    loop.run_once()
    assert sorted(passes.take()) == sorted([a, b, c])


def test_a_write_without_a_doorbell_is_found_by_the_next_scan(sqlite_store: Store) -> None:
    world, (a, b, _c) = _world(sqlite_store)
    loop = _loop(world, sqlite_store, resync=timedelta(seconds=1))
    loop.run_once()
    passes = Counting(world)
    # Another process (a second server, a script) changes the capacity in the database.
    commands.set_capacity(sqlite_store, scale_set_id=a, capacity=4, now=world.clock.now())
    loop.run_once()
    assert passes.take() == []  # not scanned yet: the doorbell never rang
    world.clock.advance(timedelta(seconds=1))
    loop.run_once()
    assert passes.take()[:1] == [a]
    with sqlite_store.transaction() as tx:
        assert len(tx.instances(a)) == 4
        assert len(tx.instances(b)) == 2


def test_a_run_is_driven_by_its_own_timers_and_the_drivers_changes(sqlite_store: Store) -> None:
    world, (a, b, _c) = _world(sqlite_store)
    loop = _loop(world, sqlite_store, full_resync=timedelta(days=1))
    loop.run_once()
    passes = Counting(world)
    world.publish("1.1.0")  # a real rollout: reimages, boots and health waits on timers
    run = world.start_upgrade(a)
    loop.notify(a)
    rounds = 0
    for _ in range(500):
        rounds += 1
        wait = loop.run_once()
        with sqlite_store.transaction() as tx:
            if tx.get_run(run.run_id).status.is_terminal:
                break
        world.clock.advance(timedelta(seconds=wait))
    with sqlite_store.transaction() as tx:
        finished = tx.get_run(run.run_id)
        assert str(finished.status) == "Completed"
        assert {r.image_version for r in tx.instances(a).values()} == {"1.1.0"}
    assert len(finished.batches) == 2 and rounds > 2  # batch after batch, each on its timer
    passed = set(passes.take())
    assert a in passed and b not in passed  # nobody else was disturbed


def test_the_full_resync_passes_over_everyone(sqlite_store: Store) -> None:
    world, ids = _world(sqlite_store)
    loop = _loop(world, sqlite_store, full_resync=timedelta(seconds=30))
    loop.run_once()
    passes = Counting(world)
    world.clock.advance(timedelta(seconds=31))
    loop.run_once()
    assert sorted(passes.take()) == sorted(ids)


def test_a_driver_that_lost_its_fleet_gets_it_back_and_the_run_keeps_every_instance(
        sqlite_store: Store) -> None:
    """The simulated driver keeps nothing across a restart: the first pass recreates the
    instances and the run waits for them rather than dropping them as deleted."""
    from scaleset.drivers.simulated import SimulatedDriver
    from scaleset.reconcile.shell import Reconciler

    world, (a, _b, _c) = _world(sqlite_store)
    world.publish("1.1.0")
    run = world.start_upgrade(a)
    world.reconciler.reconcile(a)
    world.driver = SimulatedDriver(start=world.clock.now())
    world.reconciler = Reconciler(store=sqlite_store, driver=world.driver, clock=world.clock,
                                  settings=world.settings)
    world.reconciler.reconcile(a)
    assert sorted(world.driver.instance_ids(a)) == ["0", "1"]
    assert sorted(world.run(run.run_id).instances) == ["0", "1"]
    world.settle(a)
    finished = world.run(run.run_id)
    assert str(finished.status) == "Completed"
    assert finished.progress().successful == 2
