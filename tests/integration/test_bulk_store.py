"""The engine's bulk writes (``store/bulk.py``) store exactly what the SQLAlchemy types would.

Rows written on the cursor must read back the same through both paths, on
SQLite and PostgreSQL, and an update must touch only the columns that changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from scaleset.model.instance import (
    DataDiskRecord,
    ExtensionStatus,
    HealthState,
    InstanceRecord,
    PowerAction,
    PowerRequest,
    PowerState,
    ProvisioningState,
)
from scaleset.store import tables as t
from scaleset.store.repository import Store
from scaleset.upgrade.actions import Event
from tests.support import World

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _scale_set(store: Store) -> str:
    return World.create(store).add_scale_set(capacity=0)


def _full_record(sid: str) -> InstanceRecord:
    return InstanceRecord(
        scale_set_id=sid, instance_id="7", zone="2", fault_domain=1, update_domain=3,
        model_generation=4, image_version="1.0.0", os_disk_id="d7", previous_os_disk_id="p7",
        previous_image_version="0.9.0", previous_model_generation=3,
        data_disks=(DataDiskRecord(0, "data0", 32), DataDiskRecord(1, "data1", None)),
        power_state=PowerState.STOPPED, provisioning_state=ProvisioningState.UPDATING,
        health_state=HealthState.UNHEALTHY, protect_from_scale_in=True,
        protect_from_scale_set_actions=False, private_ip="10.0.0.7",
        extensions=(ExtensionStatus("health", "ApplicationHealthLinux", "Failed", "boom",
                                    "1.0"),),
        power_request=PowerRequest("op1", PowerAction.POWER_OFF, True, None, None),
        reset_data_disks_run="run9")


def test_an_instance_written_in_bulk_reads_back_whole_through_both_paths(store: Store) -> None:
    sid = _scale_set(store)
    record = _full_record(sid)
    plain = InstanceRecord(scale_set_id=sid, instance_id="8", zone=None, fault_domain=0,
                           update_domain=0, model_generation=1, image_version=None,
                           os_disk_id="d8")
    with store.transaction() as tx:
        tx.insert_instances([record, plain])
    with store.transaction() as tx:
        assert tx.instances(sid) == {"7": record, "8": plain}
        row = tx.conn.execute(select(t.instances).where(
            t.instances.c.instance_id == "7")).one()
    # Through SQLAlchemy's own JSON and string types, the values are the documented shapes.
    assert row.data_disks == [[0, "data0", 32], [1, "data1", None]]
    assert row.extension_statuses == [{"name": "health", "type": "ApplicationHealthLinux",
                                       "state": "Failed", "message": "boom",
                                       "typeHandlerVersion": "1.0"}]
    assert row.user_intent == {"power": {"opId": "op1", "action": "powerOff",
                                         "skipShutdown": True, "outcome": None,
                                         "message": None},
                               "resetDataDisksRun": "run9"}
    assert (row.power_state, row.provisioning_state, row.health_state) == (
        str(PowerState.STOPPED), str(ProvisioningState.UPDATING), str(HealthState.UNHEALTHY))
    assert row.protect_from_scale_in is True and row.protect_from_scale_set_actions is False


def test_an_update_sets_only_the_columns_that_changed(store: Store) -> None:
    sid = _scale_set(store)
    record = _full_record(sid)
    with store.transaction() as tx:
        tx.insert_instances([record])
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE instances"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        healthy = record.replace(health_state=HealthState.HEALTHY)
        with store.transaction() as tx:
            assert tx.update_instance_changes([(record, healthy)]) == 1
            assert tx.update_instance_changes([(healthy, healthy)]) == 0  # nothing changed
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert len(statements) == 1
    set_clause = statements[0].split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    assert set_clause.split(" = ")[0] == "health_state" and "," not in set_clause
    with store.transaction() as tx:
        assert tx.instances(sid)["7"] == healthy


def test_events_keep_their_time_to_the_microsecond_and_their_data(store: Store) -> None:
    sid = _scale_set(store)
    with store.transaction() as tx:
        tx.append_events(sid, None, [Event("Something", "it happened", "7", {"k": [1, "v"]})],
                         AT)
    with store.transaction() as tx:
        (stored,) = [e for e in tx.events(sid) if e["kind"] == "Something"]
    assert stored["at"] == AT
    assert stored["data"] == {"k": [1, "v"]}
    assert (stored["instance_id"], stored["message"]) == ("7", "it happened")
    later = [e for e in _events_since(store, sid, AT - timedelta(microseconds=1))]
    assert [e["kind"] for e in later] == ["Something"]


def _events_since(store: Store, sid: str, since: datetime) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return [e for e in tx.events(sid, since=since) if e["kind"] == "Something"]
