"""The real-time reconcile loop's metrics: pass durations, failed passes, and lag."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from scaleset.server.loop import ReconcileLoop
from scaleset.store.repository import Store
from scaleset.telemetry.metrics import Metrics
from tests.support import World


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


def test_each_pass_is_timed_and_a_failed_one_counted(sqlite_store: Store,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    world = World.create(sqlite_store)
    world.add_scale_set("a", capacity=1)
    world.add_scale_set("b", capacity=1)
    metrics = Metrics()
    loop = ReconcileLoop(reconciler=world.reconciler, store=sqlite_store, clock=world.clock,
                         metrics=metrics)
    loop.run_once()
    assert sample(metrics, "scaleset_reconcile_pass_duration_seconds_count") == 2
    assert sample(metrics, "scaleset_reconcile_pass_failures_total") == 0

    def broken(_sid: str) -> None:
        raise RuntimeError("a pass broke")

    world.reconciler.reconcile = broken  # type: ignore[assignment,method-assign]
    loop.notify()  # both are due again (only what is due gets a pass)
    loop.run_once()
    assert sample(metrics, "scaleset_reconcile_pass_failures_total") == 2
    assert sample(metrics, "scaleset_reconcile_pass_duration_seconds_count") == 4
    assert "reconcile pass failed" in caplog.text


def test_rounds_record_their_lag_and_run_after_round(sqlite_store: Store) -> None:
    world = World.create(sqlite_store)
    world.add_scale_set(capacity=1)
    metrics = Metrics()
    rounds: list[float] = []
    loop = ReconcileLoop(reconciler=world.reconciler, store=sqlite_store, clock=world.clock,
                         metrics=metrics, resync=timedelta(seconds=0.05),
                         after_round=lambda: rounds.append(time.monotonic()))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while sample(metrics, "scaleset_reconcile_lag_seconds_count") < 3:
            assert time.monotonic() < deadline, "the loop ran no rounds"
            loop.notify()
            time.sleep(0.02)
    finally:
        loop.stop()
    assert len(rounds) >= 4  # every round, the first one too (it has no due time: no lag)
    lag = sample(metrics, "scaleset_reconcile_lag_seconds_sum")
    assert 0 <= lag < 5 * sample(metrics, "scaleset_reconcile_lag_seconds_count")


def test_a_failing_after_round_does_not_stop_the_loop(sqlite_store: Store,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    world = World.create(sqlite_store)
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise RuntimeError("the log could not be read")

    loop = ReconcileLoop(reconciler=world.reconciler, store=sqlite_store, clock=world.clock,
                         resync=timedelta(seconds=0.02), after_round=failing)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        loop.stop()
    assert "logging the round's events failed" in caplog.text
