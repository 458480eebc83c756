"""Run, batch and instance outcomes in serve's log: read back from the stored events once
committed, so the log says what ``GET .../events`` says, each event once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile.loop import LoopLimitExceeded
from scaleset.server.outcome_log import OutcomeLog
from scaleset.store import tables as t
from scaleset.store.repository import Store
from scaleset.telemetry.metrics import Metrics
from scaleset.clock import EPOCH
from tests.support import World

EVENTS = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
          "Microsoft.Compute/virtualMachineScaleSets/vmss1/events?api-version=2024-07-01"
          "&$top=1000")
POLICY = {"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50}


@pytest.fixture
def world(store: Store) -> World:
    """SQLite, and PostgreSQL when one is configured."""
    return World.create(store, bad_images=frozenset({"2.0.0"}))


@pytest.fixture
def events_api(world: World) -> Iterator[TestClient]:
    context = ApiContext(store=world.store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield client


def logged(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.name == "scaleset.events"]


def test_the_log_says_what_the_events_api_says_each_event_once(
        world: World, events_api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="scaleset.events")
    sid = world.add_scale_set(capacity=4, policy=POLICY)
    world.settle()
    before = len(events_api.get(EVENTS).json()["value"])
    tail = OutcomeLog(store=world.store)  # from the newest event on, as serve starts
    world.publish("1.1.0")
    world.start_upgrade(sid)
    while True:  # a few passes at a time, as serve's rounds do
        try:
            world.settle(max_rounds=3)
            break
        except LoopLimitExceeded:
            tail.catch_up()
    tail.catch_up()
    assert tail.catch_up() == 0  # nothing twice
    stored = events_api.get(EVENTS).json()["value"][before:]
    seen = [(str(r.fields["event_id"]), r.fields["event"], r.fields.get("instance_id"),
             r.fields.get("run_id")) for r in logged(caplog)]
    assert seen == [(e["id"], e["kind"], e["instanceId"], e["runId"]) for e in stored]
    kinds = [kind for _, kind, _, _ in seen]
    for kind in ("RunStarted", "BatchStarted", "BatchCompleted", "InstanceUpgraded",
                 "RunFinished"):
        assert kind in kinds
    finished = [r for r in logged(caplog) if r.fields["event"] == "RunFinished"]
    assert [(r.levelname, r.fields["status"]) for r in finished] == [("INFO", "Completed")]
    assert "vmss1" in finished[0].getMessage()


def test_failures_are_warnings_with_their_cause_and_error_code(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="scaleset.events")
    sid = world.add_scale_set(capacity=4, policy=POLICY, automatic=False)
    world.settle()
    tail = OutcomeLog(store=world.store)
    world.publish("2.0.0")  # never healthy
    world.start_upgrade(sid)
    world.settle()
    tail.catch_up()
    failed = [r for r in logged(caplog) if r.fields["event"] == "InstanceFailed"]
    assert failed and all(r.levelname == "WARNING" for r in failed)
    assert all("not healthy within" in r.getMessage() for r in failed)
    assert all(r.fields["instance_id"] in r.getMessage() for r in failed)
    [finished] = [r for r in logged(caplog) if r.fields["event"] == "RunFinished"]
    assert (finished.levelname, finished.fields["status"]) == ("WARNING", "Faulted")
    assert finished.fields["error_code"] == world.run(finished.fields["run_id"]).error.code  # type: ignore[union-attr]
    assert finished.fields["started_by"] == "User"


def test_a_restarted_server_logs_nothing_from_before(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="scaleset.events")
    world.add_scale_set(capacity=2)
    world.settle()
    assert OutcomeLog(store=world.store).catch_up() == 0
    assert logged(caplog) == []


def test_the_durations_come_from_the_events(world: World) -> None:
    metrics = Metrics()
    sid = world.add_scale_set(capacity=4, policy=POLICY)
    world.settle()
    tail = OutcomeLog(store=world.store, metrics=metrics)
    world.clock.advance(timedelta(minutes=1))
    world.publish("1.1.0")  # the platform starts its run at the next pass
    world.settle(sid)
    tail.catch_up()
    text = metrics.exposition().decode()
    assert 'scaleset_batch_duration_seconds_count{kind="OSImage"} 2.0' in text
    assert 'scaleset_instance_upgrade_duration_seconds_count{outcome="upgraded"} 4.0' in text
    assert "scaleset_trigger_delay_seconds_count 1.0" in text
    assert "scaleset_trigger_delay_seconds_sum 0.0" in text  # no rollout delay configured


def _insert(store: Store, *event_ids: int, note: str = "first") -> None:
    with store.transaction() as tx:
        for event_id in event_ids:
            tx.conn.execute(insert(t.events).values(
                id=event_id, at=EPOCH, scale_set_id="/s/x", run_id=None, kind="Note",
                instance_id=None, message=f"{note} event {event_id}", data={}))


def _ids(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.fields["event_id"] for r in logged(caplog)]


def test_an_id_committed_after_a_later_one_is_still_logged(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL hands out ids at insert and commits in any order."""
    caplog.set_level("INFO", logger="scaleset.events")
    tail = OutcomeLog(store=store)
    _insert(store, 1, 3)
    tail.catch_up()
    _insert(store, 2)  # its transaction committed last
    tail.catch_up()
    tail.catch_up()
    assert _ids(caplog) == [1, 3, 2]


def test_ids_freed_by_a_delete_and_handed_out_again_are_logged(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite reuses the highest rowids once their rows are gone (a scale set deleted)."""
    caplog.set_level("INFO", logger="scaleset.events")
    tail = OutcomeLog(store=sqlite_store)
    _insert(sqlite_store, 1, 2, 3)
    tail.catch_up()
    with sqlite_store.transaction() as tx:
        tx.conn.execute(delete(t.events).where(t.events.c.id >= 2))
    _insert(sqlite_store, 2, 3, 4, note="another scale set's")
    tail.catch_up()
    assert _ids(caplog) == [1, 2, 3, 2, 3, 4]
