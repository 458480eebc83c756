"""The repository on both backends: what goes in comes out, and guarded writes stay guarded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scaleset.errors import OperationNotAllowed
from scaleset.model.instance import (
    DataDiskRecord,
    HealthState,
    InstanceRecord,
    PowerState,
    ProvisioningState,
)
from scaleset.reconcile import commands, views
from scaleset.store.repository import (
    ConflictError,
    ImageVersionRow,
    NotFoundError,
    ScaleSetRow,
    Store,
    StoreError,
)
from scaleset.upgrade.actions import Decision, Event
from scaleset.upgrade.state import (
    Batch,
    Policy,
    Progress,
    Run,
    RunError,
    RunInstance,
    RunKind,
    RunStatus,
    StartedBy,
    Step,
    Target,
)
from tests.support import World, scale_set_id, scale_set_model

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))


def _row(name: str = "vmss1", *, at: datetime = T0) -> ScaleSetRow:
    return ScaleSetRow(
        id=scale_set_id(name), name=name, location="westus",
        model=scale_set_model(name, capacity=3, zones=["1", "2"],
                              policy={"maxBatchInstancePercent": 50,
                                      "pauseTimeBetweenBatches": "PT10S"}),
        generation=2, image_version="1.0.0", next_instance_id=3, etag='"abc"',
        created_at=at, updated_at=at,
    )


def _record(sid: str, iid: str, **changes: object) -> InstanceRecord:
    record = InstanceRecord(
        scale_set_id=sid, instance_id=iid, zone="1", fault_domain=1, update_domain=2,
        model_generation=2, image_version="1.0.0", os_disk_id=f"os-{iid}",
        data_disks=(DataDiskRecord(0, f"d0-{iid}", 32), DataDiskRecord(3, f"d3-{iid}", None)),
        power_state=PowerState.RUNNING, provisioning_state=ProvisioningState.SUCCEEDED,
        health_state=HealthState.HEALTHY,
    )
    return record.replace(**changes)


def _run(sid: str, n: int, *, start: datetime, kind: RunKind = RunKind.OS_IMAGE,
         status: RunStatus = RunStatus.ROLLING_FORWARD, steps: list[Step] | None = None,
         started_by: StartedBy = StartedBy.PLATFORM) -> Run:
    steps = steps if steps is not None else [Step.PENDING] * 3
    instances = {str(i): RunInstance(str(i), step) for i, step in enumerate(steps)}
    return Run(
        run_id=f"run-{n:03d}", scale_set_id=sid, kind=kind, started_by=started_by,
        target=Target(f"1.{n}.0" if kind is RunKind.OS_IMAGE else None, 1),
        policy=Policy(max_batch_instance_percent=33,
                      pause_time_between_batches=timedelta(seconds=90),
                      health_timeout=timedelta(minutes=7)),
        start_time=start, instances=instances, status=status,
        end_time=None if not status.is_terminal else start + timedelta(hours=1),
        next_batch_at=start,
    )


def _insert_run(store: Store, run: Run) -> None:
    reference = None
    if run.target.image_version:
        reference = {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
                     "version": run.target.image_version}
    with store.transaction() as tx:
        tx.insert_run(run, target_image_reference=reference)


# -- scale sets and instances --------------------------------------------------------

def test_a_scale_set_round_trips_with_utc_aware_times(store: Store) -> None:
    row = _row(at=datetime(2026, 3, 1, 17, 30, tzinfo=PLUS_0530))  # 12:00 UTC
    with store.transaction() as tx:
        tx.insert_scale_set(row)
    with store.transaction() as tx:
        got = tx.get_scale_set(row.id)
        assert tx.get_scale_set(scale_set_id("missing")) is None
        assert tx.scale_set_ids() == [row.id]
    assert got is not None
    assert got.created_at == T0 and got.updated_at == T0
    assert got.created_at.tzinfo is UTC and got.updated_at.tzinfo is UTC
    assert got.model.model_dump(by_alias=True) == row.model.model_dump(by_alias=True)
    assert got.model.rolling_upgrade_policy.pause_time_between_batches == timedelta(seconds=10)
    assert (got.id, got.name, got.location, got.generation, got.image_version,
            got.next_instance_id, got.etag, got.revision) == (
        row.id, row.name, row.location, 2, "1.0.0", 3, '"abc"', 0)

    later = T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        tx.update_scale_set(got.replace(image_version="1.1.0", generation=3, updated_at=later))
    with store.transaction() as tx:
        again = tx.get_scale_set(row.id)
    assert again is not None
    assert (again.image_version, again.generation, again.updated_at) == ("1.1.0", 3, later)
    assert again.created_at == T0  # an update never rewrites the creation time


def test_a_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="naive datetime"), store.transaction() as tx:
        tx.insert_scale_set(_row(at=datetime(2026, 3, 1, 12, 0)))
    with store.transaction() as tx:
        assert tx.scale_set_ids() == []


def test_revision_touch_and_claim(store: Store) -> None:
    row = _row()
    with store.transaction() as tx:
        tx.insert_scale_set(row)
        assert tx.touch(row.id) == 1
        assert tx.touch(scale_set_id("missing")) is None
    with store.transaction() as tx:
        assert tx.claim(row.id, 1) == 2
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.claim(row.id, 1)  # someone else moved it to 2
    with store.transaction() as tx:
        got = tx.get_scale_set(row.id)
    assert got is not None and got.revision == 2


def test_instances_round_trip_update_and_delete(store: Store) -> None:
    row = _row()
    records = [_record(row.id, "0"),
               _record(row.id, "1", zone=None, previous_os_disk_id="os-1-old",
                       previous_image_version="0.9.0", previous_model_generation=1,
                       health_state=HealthState.INITIALIZING,
                       power_state=PowerState.STARTING,
                       provisioning_state=ProvisioningState.UPDATING,
                       protect_from_scale_in=True),
               _record(row.id, "2", data_disks=(), image_version=None,
                       protect_from_scale_set_actions=True)]
    with store.transaction() as tx:
        tx.insert_scale_set(row)
        tx.insert_instances(records)
    with store.transaction() as tx:
        assert tx.instances(row.id) == {r.instance_id: r for r in records}
        assert tx.instances(scale_set_id("other")) == {}

    changed = [records[0].replace(image_version="1.1.0", os_disk_id="os-0-new",
                                  previous_os_disk_id="os-0",
                                  health_state=HealthState.UNHEALTHY),
               records[1].replace(previous_os_disk_id=None, previous_image_version=None,
                                  previous_model_generation=None)]
    with store.transaction() as tx:
        tx.update_instances(changed)
        tx.update_instances([])  # nothing to write is fine
    with store.transaction() as tx:
        assert tx.instances(row.id) == {r.instance_id: r for r in [*changed, records[2]]}
        tx.delete_instances(row.id, ["1", "2", "does-not-exist"])
        tx.delete_instances(row.id, [])
    with store.transaction() as tx:
        assert list(tx.instances(row.id)) == ["0"]


def test_a_failed_transaction_writes_nothing(store: Store) -> None:
    row = _row()
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_scale_set(row)
        tx.insert_instances([_record(row.id, "0")])
        raise RuntimeError("boom")
    with store.transaction() as tx:
        assert tx.get_scale_set(row.id) is None
        assert tx.instances(row.id) == {}


def test_image_versions_are_keyed_case_insensitively_and_replaced(store: Store) -> None:
    published = T0.astimezone(PLUS_0530)
    with store.transaction() as tx:
        tx.put_image_version(ImageVersionRow("WestUS", "Canonical", "UbuntuServer", "18.04-LTS",
                                             "1.0.0", "Linux", {"a": 1}, published))
        tx.put_image_version(ImageVersionRow("westus", "canonical", "ubuntuserver", "18.04-lts",
                                             "1.0.0", "Linux", {"a": 2}, published))
        tx.put_image_version(ImageVersionRow("westus", "Canonical", "UbuntuServer", "18.04-LTS",
                                             "1.1.0", "Linux", {}, published))
    with store.transaction() as tx:
        found = tx.image_versions("WESTUS", "CANONICAL", "UBUNTUSERVER", "18.04-lts")
        assert tx.image_versions("eastus", "Canonical", "UbuntuServer", "18.04-LTS") == []
    assert sorted((v.version, dict(v.properties)) for v in found) == [
        ("1.0.0", {"a": 2}), ("1.1.0", {})]
    assert all(v.published_at == T0 and v.published_at.tzinfo is UTC for v in found)


# -- runs ------------------------------------------------------------------------------

def test_a_run_round_trips_whole(store: Store) -> None:
    row = _row()
    deadline = (T0 + timedelta(minutes=9)).astimezone(PLUS_0530)
    run = _run(row.id, 1, start=T0.astimezone(PLUS_0530)).replace(
        instances={
            "0": RunInstance("0", Step.SUCCEEDED, 0),
            "1": RunInstance("1", Step.WAITING_HEALTH, 1, deadline, "booting"),
            "2": RunInstance("2", Step.PENDING),
        },
        batches=(Batch(0, ("0",), T0, T0 + timedelta(minutes=3)),
                 Batch(1, ("1",), T0 + timedelta(minutes=4))),
        rollback_on_failure=True, rollback_on_breach=True, cancel_requested=True,
        cancel_time=T0 + timedelta(minutes=5), error=RunError("Code", "message", "target"),
        next_batch_at=None,
    )
    with store.transaction() as tx:
        tx.insert_scale_set(row)
    _insert_run(store, run)
    with store.transaction() as tx:
        got = tx.get_run(run.run_id)
        active = tx.active_run(row.id)
        with pytest.raises(NotFoundError):
            tx.get_run("no-such-run")
    assert got == run
    assert got.start_time.tzinfo is UTC
    got_deadline = got.instances["1"].health_deadline
    assert got_deadline == deadline
    assert got_deadline is not None and got_deadline.tzinfo is UTC
    assert active == run


def test_active_run_is_the_rolling_one(store: Store) -> None:
    row = _row()
    with store.transaction() as tx:
        tx.insert_scale_set(row)
        assert tx.active_run(row.id) is None
    _insert_run(store, _run(row.id, 1, start=T0, status=RunStatus.COMPLETED))
    _insert_run(store, _run(row.id, 2, start=T0 + timedelta(hours=2),
                            status=RunStatus.ROLLING_BACK))
    _insert_run(store, _run(row.id, 3, start=T0 + timedelta(hours=3), status=RunStatus.FAULTED))
    with store.transaction() as tx:
        active = tx.active_run(row.id)
        past = tx.past_runs(row.id)
    assert active is not None and active.run_id == "run-002"
    assert [r.run_id for r in past] == ["run-003", "run-002", "run-001"]
    assert all(r.instances == {} and r.batches == () for r in past)


def test_save_decision_is_guarded_on_the_previous_status(store: Store) -> None:
    row = _row()
    with store.transaction() as tx:
        tx.insert_scale_set(row)
    run = _run(row.id, 1, start=T0, steps=[Step.UPGRADING, Step.PENDING, Step.PENDING]).replace(
        batches=(Batch(0, ("0",), T0),), next_batch_at=None)
    _insert_run(store, run)
    later = T0 + timedelta(minutes=10)

    # The first writer: instance 0 succeeded, the batch closed, the run was cancelled.
    first = run.replace(
        instances={**run.instances, "0": RunInstance("0", Step.SUCCEEDED, 0)},
        batches=(Batch(0, ("0",), T0, later),),
    ).with_status(RunStatus.CANCELLED, end_time=later)
    with store.transaction() as tx:
        tx.save_decision(run, Decision(first, changed=frozenset({"0"}),
                                       events=(Event("RunFinished", "run Cancelled"),)), later)
    with store.transaction() as tx:
        after_first = tx.get_run(run.run_id)
        events_after_first = tx.events(row.id)
    assert after_first == first

    # A replay of a decision made from the same (now stale) RollingForward run.
    second = run.replace(
        instances={**run.instances, "0": RunInstance("0", Step.FAILED, 0, reason="late"),
                   "1": RunInstance("1", Step.UPGRADING, 1)},
        batches=(Batch(0, ("0",), T0, later), Batch(1, ("1",), later)),
    ).with_status(RunStatus.ROLLING_BACK, error=RunError("X", "y"))
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.save_decision(run, Decision(second, changed=frozenset({"0", "1"}),
                                       events=(Event("RollingBack", "no"),)), later)
    with store.transaction() as tx:
        assert tx.get_run(run.run_id) == after_first
        assert tx.events(row.id) == events_after_first
        assert tx.active_run(row.id) is None


def test_run_summaries_count_progress_like_the_run(store: Store) -> None:
    row = _row()
    with store.transaction() as tx:
        tx.insert_scale_set(row)
    every_step = [*Step, Step.PENDING, Step.SUCCEEDED, Step.ROLLED_BACK, Step.UPGRADING]
    runs = [
        _run(row.id, 1, start=T0, steps=every_step),
        _run(row.id, 2, start=T0 + timedelta(days=1), steps=[], status=RunStatus.COMPLETED),
        _run(row.id, 3, start=T0 + timedelta(days=2), kind=RunKind.MODEL,
             steps=[Step.SUCCEEDED, Step.FAILED], status=RunStatus.FAULTED),
    ]
    for run in runs:
        _insert_run(store, run)
    with store.transaction() as tx:
        summaries = tx.run_summaries(row.id)
        os_only = tx.run_summaries(row.id, kind=RunKind.OS_IMAGE)
        recent = tx.run_summaries(row.id, since=T0 + timedelta(hours=1), limit=1)
    assert [s.run.run_id for s in summaries] == ["run-003", "run-002", "run-001"]
    for summary, run in zip(summaries, reversed(runs), strict=True):
        assert summary.progress == run.progress()
        assert summary.progress.total == len(run.instances)
    first = runs[0].progress()
    assert first == Progress(successful=2, failed=5, in_progress=3, pending=2, rolled_back=2,
                             rollback_failed=1)
    assert [s.run.run_id for s in os_only] == ["run-002", "run-001"]
    assert [s.run.run_id for s in recent] == ["run-003"]
    assert summaries[2].target_image_reference == {
        "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
        "version": "1.1.0"}
    assert summaries[0].target_image_reference is None


def test_history_is_the_last_five_os_runs_of_sixty_days_newest_first(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=2)
    now = world.clock.now()
    ages = {1: 75, 2: 61, 3: 59, 4: 50, 5: 40, 6: 30, 7: 20, 8: 10, 9: 1}  # days ago
    for n, days in ages.items():
        status = RunStatus.COMPLETED if n % 2 else RunStatus.CANCELLED
        _insert_run(store, _run(sid, n, start=now - timedelta(days=days), status=status))
    # A model run is not an OS upgrade, however recent.
    _insert_run(store, _run(sid, 10, start=now - timedelta(hours=1), kind=RunKind.MODEL,
                            status=RunStatus.COMPLETED))
    history = views.os_upgrade_history(store, scale_set_id=sid, now=now)
    starts = [h.properties.running_status.start_time for h in history]
    assert starts == [now - timedelta(days=d) for d in (1, 10, 20, 30, 40)]
    assert [h.properties.target_image_reference.version  # type: ignore[union-attr]
            for h in history] == ["1.9.0", "1.8.0", "1.7.0", "1.6.0", "1.5.0"]
    assert [h.properties.running_status.code for h in history] == [
        "Completed", "Cancelled", "Completed", "Cancelled", "Completed"]
    # Thirty days on, only what started within the window remains.
    later = views.os_upgrade_history(store, scale_set_id=sid, now=now + timedelta(days=30))
    assert [h.properties.target_image_reference.version  # type: ignore[union-attr]
            for h in later] == ["1.9.0", "1.8.0", "1.7.0", "1.6.0"]


def test_history_of_real_runs_started_and_cancelled(store: Store) -> None:
    world = World.create(store)
    # No automatic OS upgrade: only the runs started here exist.
    sid = world.add_scale_set(capacity=4, automatic=False,
                              policy={"maxBatchInstancePercent": 25,
                                      "maxUnhealthyInstancePercent": 25})
    for minor in range(1, 8):
        world.clock.advance(timedelta(days=3))
        world.publish(f"1.{minor}.0")
        run = world.start_upgrade(sid)  # a User run
        world.reconciler.reconcile(sid)  # its first batch starts
        commands.cancel(store, scale_set_id=sid, now=world.clock.now())
        world.settle(sid)
        assert world.run(run.run_id).status is RunStatus.CANCELLED
    with store.transaction() as tx:
        assert len(tx.past_runs(sid)) == 7
    with pytest.raises(OperationNotAllowed, match="no ongoing Rolling Upgrade"):
        commands.cancel(store, scale_set_id=sid, now=world.clock.now())
    history = views.os_upgrade_history(store, scale_set_id=sid, now=world.clock.now())
    assert len(history) == 5
    versions = [h.properties.target_image_reference.version  # type: ignore[union-attr]
                for h in history]
    assert versions == ["1.7.0", "1.6.0", "1.5.0", "1.4.0", "1.3.0"]
    for item in history:
        props = item.properties
        assert props.running_status.code == "Cancelled"
        assert props.started_by == "User"
        assert props.progress.successful_instance_count == 1  # one batch of one ran
        assert props.progress.pending_instance_count == 3


# -- events ----------------------------------------------------------------------------

def test_the_event_log_is_append_only_and_ordered(store: Store) -> None:
    world = World.create(store)
    sid = world.add_scale_set(capacity=3)
    with store.transaction() as tx:
        before = tx.events(sid)
    assert [e["kind"] for e in before][:1] == ["ScaleSetCreated"]
    assert len(before) >= 4  # created, and three instances added

    # Events may be appended with any timestamp; the log keeps insertion order.
    with store.transaction() as tx:
        tx.append_events(sid, None, [Event("Note", "b", "1", {"k": [1, 2]}),
                                     Event("Note", "c")], T0)
        tx.append_events(sid, None, [], T0)
    with store.transaction() as tx:
        tx.append_events(sid, "run-x", [Event("Note", "a")], T0 - timedelta(days=1))

    world.publish("1.1.0")
    world.settle(sid)
    with store.transaction() as tx:
        after = tx.events(sid)
        for_run = tx.events(sid, run_id="run-x")
        tail = tx.events(sid, after_id=before[-1]["id"])
        other = tx.events(scale_set_id("other"))
    assert after[:len(before)] == before  # nothing earlier was changed or removed
    ids = [e["id"] for e in after]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert tail == after[len(before):]
    notes = [(e["message"], e["instance_id"], e["data"], e["at"]) for e in tail[:3]]
    assert notes == [("b", "1", {"k": [1, 2]}, T0), ("c", None, {}, T0),
                     ("a", None, {}, T0 - timedelta(days=1))]
    assert all(e["at"].tzinfo is UTC for e in after)
    assert [e["message"] for e in for_run] == ["a"]
    assert other == []
    kinds = [e["kind"] for e in after]
    assert "RunStarted" in kinds and "RunFinished" in kinds
    assert kinds.index("RunStarted") < kinds.index("RunFinished")
