"""A small world for tests: a store, a virtual clock, a simulated driver and the shell.

    world = World.create(store)            # store: any Store (SQLite or PostgreSQL)
    sid = world.add_scale_set(capacity=10, policy={"maxBatchInstancePercent": 20})
    world.settle()                          # passes until no run is active
    world.publish("1.1.0")                  # a newer platform image version
    run = world.start_upgrade()             # a User run (or started_by=StartedBy.PLATFORM)
    world.settle()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from scaleset.clock import EPOCH, VirtualClock
from scaleset.drivers.simulated import Faults, SimulatedDriver, Timings
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import commands, probes
from scaleset.reconcile.loop import LoopResult, run_settled, run_until
from scaleset.reconcile.settings import ShellSettings
from scaleset.reconcile.shell import Checkpoint, Reconciler
from scaleset.store.repository import Store
from scaleset.upgrade.state import Run, StartedBy

LOCATION = "westus"
IMAGE = {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS"}
PROBE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
            "Microsoft.Network/loadBalancers/lb/probes/http")
"""The probe every test scale set names; ``World.create`` makes its load balancer."""


def scale_set_id(name: str) -> str:
    return ("/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/"
            f"microsoft.compute/virtualmachinescalesets/{name.lower()}")


def scale_set_model(
    name: str = "vmss1",
    *,
    capacity: int = 10,
    mode: str = "Rolling",
    automatic: bool = True,
    policy: Mapping[str, Any] | None = None,
    zones: list[str] | None = None,
    disable_automatic_rollback: bool = False,
    extra_properties: Mapping[str, Any] | None = None,
) -> ScaleSet:
    """An ARM scale-set body with sensible defaults for tests."""
    upgrade: dict[str, Any] = {
        "mode": mode,
        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": automatic,
                                     "disableAutomaticRollback": disable_automatic_rollback},
    }
    if policy is not None:
        upgrade["rollingUpgradePolicy"] = dict(policy)
    body: dict[str, Any] = {
        "name": name,
        "location": LOCATION,
        "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "zones": zones or [],
        "properties": {
            "upgradePolicy": upgrade,
            "virtualMachineProfile": {
                "storageProfile": {
                    "imageReference": {**IMAGE, "version": "latest"},
                    "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 32}],
                },
                "networkProfile": {"healthProbe": {"id": PROBE_ID}},
            },
            **(extra_properties or {}),
        },
    }
    return ScaleSet.model_validate(body)


@dataclass
class World:
    store: Store
    clock: VirtualClock
    driver: SimulatedDriver
    reconciler: Reconciler
    settings: ShellSettings

    @classmethod
    def create(
        cls,
        store: Store,
        *,
        timings: Timings | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        bad_images: frozenset[str] = frozenset(),
        health_timeout: timedelta = timedelta(minutes=5),
        checkpoint: Checkpoint | None = None,
        initial_version: str = "1.0.0",
    ) -> World:
        clock = VirtualClock(EPOCH)
        driver = SimulatedDriver(start=clock.now(), timings=timings, faults=faults, seed=seed,
                                 bad_images=bad_images)
        settings = ShellSettings(health_timeout=health_timeout)
        kwargs: dict[str, Any] = {}
        if checkpoint is not None:
            kwargs["checkpoint"] = checkpoint
        reconciler = Reconciler(store=store, driver=driver, clock=clock, settings=settings,
                                **kwargs)
        world = cls(store, clock, driver, reconciler, settings)
        probes.ensure_probe(store, PROBE_ID, location=LOCATION, now=clock.now())
        if initial_version:
            world.publish(initial_version)
        return world

    def restart(self, checkpoint: Checkpoint | None = None) -> None:
        """A new shell on the same store, driver and clock (what a process restart leaves)."""
        kwargs: dict[str, Any] = {}
        if checkpoint is not None:
            kwargs["checkpoint"] = checkpoint
        self.reconciler = Reconciler(store=self.store, driver=self.driver, clock=self.clock,
                                     settings=self.settings, **kwargs)

    def publish(self, version: str, **properties: Any) -> None:
        commands.publish_image_version(self.store, location=LOCATION, version=version,
                                       properties=properties, now=self.clock.now(), **IMAGE)

    def add_scale_set(self, name: str = "vmss1", **kwargs: Any) -> str:
        sid = scale_set_id(name)
        commands.create_scale_set(self.store, scale_set_id=sid,
                                  model=scale_set_model(name, **kwargs), now=self.clock.now())
        self.reconciler.reconcile(sid)
        return sid

    def start_upgrade(self, sid: str, started_by: StartedBy = StartedBy.USER) -> Run:
        return commands.start_os_upgrade(self.store, scale_set_id=sid, now=self.clock.now(),
                                         settings=self.settings, started_by=started_by)

    def settle(self, *sids: str, max_rounds: int = 100_000) -> LoopResult:
        """Run passes on the virtual clock until no listed scale set has an active run."""
        ids = list(sids) or self.scale_set_ids()
        return run_until(self.reconciler, self.clock, self.driver, ids, done=run_settled,
                         max_rounds=max_rounds)

    def scale_set_ids(self) -> list[str]:
        with self.store.transaction() as tx:
            return tx.scale_set_ids()

    def run(self, run_id: str) -> Run:
        with self.store.transaction() as tx:
            return tx.get_run(run_id)


T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], *, timeout: float, what: str,
             every: float = 0.2) -> T:
    """Poll ``predicate`` until it gives something truthy (returned); fail after ``timeout``
    seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not (last := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return last


class FakeClock:
    """A monotonic clock and sleep for loops under test: sleeping only moves the time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
