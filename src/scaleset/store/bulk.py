"""The engine's hot path on the database cursor: instance rows, run steps and events in bulk.

A pass over a large fleet writes thousands of rows. Through SQLAlchemy's
compiled statements each row's parameters go through per-column type
processing, and every instance update rewrote every column with its JSON
re-serialised. Here the shell's writes go straight to the DBAPI's
``executemany`` with values encoded once, and an instance update sets only
the columns that changed: records are grouped by the set of columns they
change, one statement per group (a pass usually has one or two).

The values are encoded exactly as the SQLAlchemy types in ``store/tables.py``
would encode them (``UTCDateTime``: naive UTC, as SQLite's text format there;
``JSON``: ``json.dumps``), so rows written here read back the same through
either path. ``Codec`` holds the little that differs between SQLite and
PostgreSQL: the placeholder and how a time is sent.
"""

from __future__ import annotations

import json
from operator import attrgetter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection

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


class Codec:
    """How values and placeholders are written for one database dialect."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"

    def time(self, at: datetime | None) -> Any:
        """A timezone-aware time as ``UTCDateTime`` stores it."""
        if at is None:
            return None
        if at.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        naive = at.astimezone(UTC).replace(tzinfo=None)
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME storage format
            return (f"{naive.year:04d}-{naive.month:02d}-{naive.day:02d} "
                    f"{naive.hour:02d}:{naive.minute:02d}:{naive.second:02d}."
                    f"{naive.microsecond:06d}")
        return naive

    def from_time(self, value: Any) -> datetime | None:
        """A ``UTCDateTime`` column as read from the cursor."""
        if value is None:
            return None
        if isinstance(value, str):  # SQLite keeps the text written by ``time``
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value)

    @staticmethod
    def from_json(value: Any) -> Any:
        """A JSON column as read from the cursor (PostgreSQL's driver parses it already)."""
        if not isinstance(value, str):
            return value
        if value == "null":  # most instance columns, most of the time
            return None
        if value == "[]":
            return []
        return json.loads(value)


def codec_for(conn: Connection) -> Codec:
    return Codec(conn.dialect.name)


def _executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        conn.exec_driver_sql(sql, list(rows))


# -- instances ---------------------------------------------------------------------------

def _data_disks(r: InstanceRecord) -> str:
    if not r.data_disks:
        return "[]"
    return json.dumps([[d.lun, d.disk_id, d.size_gb] for d in r.data_disks])


def _extensions(r: InstanceRecord) -> str:
    if r.extensions is None:
        return "null"
    return json.dumps([
        {"name": e.name, "type": e.type, "state": e.state, "message": e.message,
         "typeHandlerVersion": e.type_handler_version} for e in r.extensions])


def intent(r: InstanceRecord) -> dict[str, Any] | None:
    """The instance's ``user_intent`` column: its power request and data-disk reset."""
    out: dict[str, Any] = {}
    if r.power_request is not None:
        p = r.power_request
        out["power"] = {"opId": p.op_id, "action": str(p.action),
                        "skipShutdown": p.skip_shutdown, "outcome": p.outcome,
                        "message": p.message}
    if r.reset_data_disks_run is not None:
        out["resetDataDisksRun"] = r.reset_data_disks_run
    return out or None


# column -> (the record's fields it holds, how the column's value is made from a record)
_COLUMNS: Final[dict[str, tuple[tuple[str, ...], Callable[[InstanceRecord], Any]]]] = {
    "zone": (("zone",), lambda r: r.zone),
    "fault_domain": (("fault_domain",), lambda r: r.fault_domain),
    "update_domain": (("update_domain",), lambda r: r.update_domain),
    "model_generation": (("model_generation",), lambda r: r.model_generation),
    "image_version": (("image_version",), lambda r: r.image_version),
    "os_disk_id": (("os_disk_id",), lambda r: r.os_disk_id),
    "previous_os_disk_id": (("previous_os_disk_id",), lambda r: r.previous_os_disk_id),
    "previous_image_version": (("previous_image_version",), lambda r: r.previous_image_version),
    "previous_model_generation": (("previous_model_generation",),
                                  lambda r: r.previous_model_generation),
    "data_disks": (("data_disks",), _data_disks),
    "power_state": (("power_state",), lambda r: str(r.power_state)),
    "provisioning_state": (("provisioning_state",), lambda r: str(r.provisioning_state)),
    "health_state": (("health_state",), lambda r: str(r.health_state)),
    "protect_from_scale_in": (("protect_from_scale_in",), lambda r: r.protect_from_scale_in),
    "protect_from_scale_set_actions": (("protect_from_scale_set_actions",),
                                       lambda r: r.protect_from_scale_set_actions),
    "private_ip": (("private_ip",), lambda r: r.private_ip),
    "extension_statuses": (("extensions",), _extensions),
    "user_intent": (("power_request", "reset_data_disks_run"),
                    lambda r: "null" if r.power_request is None and r.reset_data_disks_run is None
                    else json.dumps(intent(r))),
}
_KEYS: Final = ("scale_set_id", "instance_id")
INSTANCE_COLUMNS: Final = _KEYS + tuple(_COLUMNS)


_GETTERS: Final = tuple((column, attrgetter(*fields)) for column, (fields, _) in _COLUMNS.items())


def _changed_columns(old: InstanceRecord | None, new: InstanceRecord) -> tuple[str, ...]:
    if old is None:
        return tuple(_COLUMNS)
    return tuple(column for column, get in _GETTERS if get(old) != get(new))


def insert_instances(conn: Connection, records: Iterable[InstanceRecord]) -> None:
    """Insert whole instance rows, one ``executemany``."""
    codec = codec_for(conn)
    sql = (f"INSERT INTO instances ({', '.join(INSTANCE_COLUMNS)}) VALUES "
           f"({', '.join([codec.mark] * len(INSTANCE_COLUMNS))})")
    _executemany(conn, sql, [(r.scale_set_id, r.instance_id,
                              *(make(r) for _, make in _COLUMNS.values())) for r in records])


def update_instances(conn: Connection,
                     changes: Iterable[tuple[InstanceRecord | None, InstanceRecord]]) -> int:
    """Write each ``(old, new)`` pair's changed columns (every column when ``old`` is None).

    Records that change the same columns share one ``executemany``. Returns the
    number of rows written.
    """
    codec = codec_for(conn)
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for old, new in changes:
        columns = _changed_columns(old, new)
        if columns:
            groups.setdefault(columns, []).append(
                (*(_COLUMNS[c][1](new) for c in columns), new.scale_set_id, new.instance_id))
    written = 0
    for columns, rows in groups.items():
        sets = ", ".join(f"{c} = {codec.mark}" for c in columns)
        _executemany(conn, f"UPDATE instances SET {sets} WHERE scale_set_id = {codec.mark} "
                           f"AND instance_id = {codec.mark}", rows)
        written += len(rows)
    return written


_POWER: Final = {str(s): s for s in PowerState}
_PROVISIONING: Final = {str(s): s for s in ProvisioningState}
_HEALTH: Final = {str(s): s for s in HealthState}


def _power_request(value: Mapping[str, Any] | None) -> PowerRequest | None:
    power = (value or {}).get("power")
    if not power:
        return None
    return PowerRequest(power["opId"], PowerAction(power["action"]),
                        bool(power.get("skipShutdown")), power.get("outcome"),
                        power.get("message"))


def load_instances(conn: Connection, scale_set_id: str) -> dict[str, InstanceRecord]:
    """A scale set's instance records, read through the cursor (the engine reloads whole
    fleets: this skips per-column result processing)."""
    codec = codec_for(conn)
    rows = conn.exec_driver_sql(
        f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances WHERE scale_set_id = {codec.mark}",
        (scale_set_id,))
    out: dict[str, InstanceRecord] = {}
    from_json = codec.from_json
    for (sid, iid, zone, fd, ud, generation, image, os_disk, prev_disk, prev_image, prev_gen,
         disks, power, provisioning, health, protect_in, protect_actions, ip, extensions,
         user_intent) in rows:
        disks = from_json(disks)
        extensions = from_json(extensions)
        user_intent = from_json(user_intent)
        out[iid] = InstanceRecord(
            sid, iid, zone, fd, ud, generation, image, os_disk, prev_disk, prev_image, prev_gen,
            tuple(DataDiskRecord(lun, disk, size) for lun, disk, size in disks) if disks else (),
            _POWER[power], _PROVISIONING[provisioning], _HEALTH[health],
            bool(protect_in), bool(protect_actions), ip,
            None if extensions is None else tuple(
                ExtensionStatus(e["name"], e["type"], e["state"], e.get("message"),
                                e.get("typeHandlerVersion")) for e in extensions),
            _power_request(user_intent),
            (user_intent or {}).get("resetDataDisksRun"),
        )
    return out


# -- run steps and events -----------------------------------------------------------------

def insert_run_instances(conn: Connection, rows: Iterable[tuple[str, str, str, int | None,
                                                                 datetime | None, str | None]]
                         ) -> None:
    """Insert ``(run_id, instance_id, step, batch_index, health_deadline, reason)`` rows."""
    codec = codec_for(conn)
    m = codec.mark
    _executemany(conn, "INSERT INTO run_instances (run_id, instance_id, step, batch_index, "
                       f"health_deadline, reason) VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
                 [(run, iid, step, batch, codec.time(deadline), reason)
                  for run, iid, step, batch, deadline, reason in rows])


def update_run_instances(conn: Connection, rows: Iterable[tuple[str, str, str, int | None,
                                                                 datetime | None, str | None]]
                         ) -> None:
    """Set step, batch, health deadline and reason of ``(run_id, instance_id, ...)`` rows."""
    codec = codec_for(conn)
    m = codec.mark
    _executemany(conn, f"UPDATE run_instances SET step = {m}, batch_index = {m}, "
                       f"health_deadline = {m}, reason = {m} WHERE run_id = {m} "
                       f"AND instance_id = {m}",
                 [(step, batch, codec.time(deadline), reason, run, iid)
                  for run, iid, step, batch, deadline, reason in rows])


def insert_events(conn: Connection, rows: Iterable[tuple[datetime, str, str | None, str,
                                                         str | None, str, Mapping[str, Any]]]
                  ) -> None:
    """Insert ``(at, scale_set_id, run_id, kind, instance_id, message, data)`` events."""
    codec = codec_for(conn)
    m = codec.mark
    _executemany(conn, "INSERT INTO events (at, scale_set_id, run_id, kind, instance_id, "
                       f"message, data) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m})",
                 [(codec.time(at), sid, run, kind, iid, message, json.dumps(dict(data)))
                  for at, sid, run, kind, iid, message, data in rows])
