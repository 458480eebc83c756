"""The operations table's repository, and the scale set's stored provisioning state.

A long-running operation (``api/lro.py``) is a row of ``operations``: what completes it
(its ``kind``), what it is about, its status (``InProgress`` until it is seen finished,
then ``Succeeded`` / ``Failed`` / ``Canceled`` for good) and its error. Every function
here takes the caller's ``Tx``, so a request reads and writes operations in its one
transaction.

A scale set's PUT or PATCH also marks the scale set row: ``provisioning_state``
(``Creating`` / ``Updating``) and ``provisioning_operation`` (that operation's id) stay
set until the operation is seen finished, so a GET reads the state from the row it
reads anyway and derives nothing while nothing is in progress. Whoever sees the PUT
finished clears them, guarded on the operation id (a newer PUT's mark stays): the
status poll, the GET, or the reconcile pass through ``settle_scale_set_put`` (which
derives the outcome exactly as the poll does, from the instances).

When a PUT is done (``scale_set_put_outcome``): every instance of the model's capacity
exists and none is still ``Creating``; an instance whose extension failed fails it, as
Azure reports ``VMExtensionProvisioningError``; a scale set deleted first fails it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Text, bindparam, cast, insert, select, update

from scaleset.model.instance import ProvisioningState
from scaleset.store import tables as t
from scaleset.store.repository import Tx

IN_PROGRESS: Final = "InProgress"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELED: Final = "Canceled"
SCALE_SET_PUT: Final = "scaleSetPut"
"""The kind of a scale set's PUT or PATCH: done when its instances have provisioned."""

Outcome = tuple[str, str | None, str | None]
"""(status, error code, error message)."""


@dataclass(frozen=True)
class Operation:
    """One row of ``operations``."""

    id: str
    location: str
    kind: str
    resource_id: str
    scale_set_id: str | None
    run_id: str | None
    status: str
    start_time: datetime
    end_time: datetime | None
    error_code: str | None
    error_message: str | None
    data: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        """The status document ARM's pollers read."""
        out: dict[str, Any] = {"name": self.id, "status": self.status,
                               "startTime": _iso(self.start_time)}
        if self.end_time is not None:
            out["endTime"] = _iso(self.end_time)
        if self.error_code:
            out["error"] = {"code": self.error_code, "message": self.error_message or ""}
        return out

    def finished(self, outcome: Outcome, at: datetime) -> Operation:
        """This operation with its terminal ``outcome`` at ``at``."""
        status, code, message = outcome
        return Operation(self.id, self.location, self.kind, self.resource_id,
                         self.scale_set_id, self.run_id, status, self.start_time, at, code,
                         message, self.data)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def insert_operation(tx: Tx, op: Operation) -> None:
    """Store a new operation; a scale set's PUT also marks the scale set as provisioning.

    The mark names the newest PUT: ``Creating`` when ``op.data["created"]``, else
    ``Updating``.
    """
    tx.conn.execute(insert(t.operations).values(
        id=op.id, location=op.location, kind=op.kind, resource_id=op.resource_id,
        scale_set_id=op.scale_set_id, run_id=op.run_id, status=op.status,
        start_time=op.start_time, data=op.data))
    if op.kind == SCALE_SET_PUT and op.scale_set_id and op.status == IN_PROGRESS:
        state = "Creating" if op.data.get("created") else "Updating"
        tx.conn.execute(update(t.scale_sets).where(t.scale_sets.c.id == op.scale_set_id)
                        .values(provisioning_state=state, provisioning_operation=op.id))


# Built once: a GET runs these, and building a statement costs more than running it.
_OPERATION = select(t.operations).where(t.operations.c.id == bindparam("id"))
_PROVISIONING = select(t.scale_sets.c.provisioning_state, t.scale_sets.c.provisioning_operation
                       ).where(t.scale_sets.c.id == bindparam("id"))


_HEAD = select(t.scale_sets.c.id, cast(t.scale_sets.c.model, Text).label("model_text"),
               t.scale_sets.c.etag, t.scale_sets.c.image_version, t.scale_sets.c.name,
               t.scale_sets.c.created_at, t.scale_sets.c.provisioning_state,
               t.scale_sets.c.provisioning_operation).where(t.scale_sets.c.id == bindparam("id"))


@dataclass(frozen=True)
class ScaleSetHead:
    """What a scale set's GET answers depends on, read without validating the model:
    ``model_text`` is the stored (sealed) model as text, the rest are its row's columns.
    Equal heads render the same resource, so a rendered answer may be kept by head."""

    id: str
    model_text: str
    etag: str
    image_version: str | None
    name: str
    created_at: datetime
    provisioning_state: str | None
    provisioning_operation: str | None


def scale_set_head(tx: Tx, scale_set_id: str) -> ScaleSetHead | None:
    """The scale set's head (one primary-key read), or None when it does not exist."""
    row = tx.conn.execute(_HEAD, {"id": scale_set_id}).first()
    if row is None:
        return None
    return ScaleSetHead(row.id, row.model_text, row.etag, row.image_version, row.name,
                        row.created_at, row.provisioning_state, row.provisioning_operation)


def get_operation(tx: Tx, op_id: str) -> Operation | None:
    """The operation with this id, or None."""
    row = tx.conn.execute(_OPERATION, {"id": op_id}).first()
    if row is None:
        return None
    return Operation(row.id, row.location, row.kind, row.resource_id, row.scale_set_id,
                     row.run_id, row.status, row.start_time, row.end_time, row.error_code,
                     row.error_message, dict(row.data))


def finish_operation(tx: Tx, op: Operation, outcome: Outcome, at: datetime) -> bool:
    """Record the first terminal outcome (guarded: a finished operation never changes);
    a scale set PUT's mark is cleared too. False when it had finished already."""
    status, code, message = outcome
    c = t.operations.c
    result = tx.conn.execute(update(t.operations).where(
        c.id == op.id, c.status == IN_PROGRESS).values(
        status=status, end_time=at, error_code=code, error_message=message))
    if op.kind == SCALE_SET_PUT and op.scale_set_id:
        clear_provisioning(tx, op.scale_set_id, op.id)
    return bool(result.rowcount)


def provisioning(tx: Tx, scale_set_id: str) -> tuple[str, str] | None:
    """(state, operation id) while the scale set's latest PUT is marked in progress."""
    row = tx.conn.execute(_PROVISIONING, {"id": scale_set_id}).first()
    if row is None or row.provisioning_operation is None:
        return None
    return str(row.provisioning_state), str(row.provisioning_operation)


def clear_provisioning(tx: Tx, scale_set_id: str, op_id: str) -> None:
    """Drop the scale set's mark if it still names ``op_id`` (a newer PUT's stays)."""
    c = t.scale_sets.c
    tx.conn.execute(update(t.scale_sets).where(
        c.id == scale_set_id, c.provisioning_operation == op_id).values(
        provisioning_state=None, provisioning_operation=None))


def scale_set_put_outcome(tx: Tx, scale_set_id: str) -> Outcome:
    """Whether a scale set's PUT is done, from its instances now (see the module)."""
    row = tx.get_scale_set(scale_set_id)
    if row is None:
        return FAILED, "ResourceNotFound", "the scale set was deleted before it provisioned"
    records = tx.instances(row.id)
    if len(records) != row.model.capacity:
        return IN_PROGRESS, None, None
    if any(r.provisioning_state is ProvisioningState.CREATING for r in records.values()):
        return IN_PROGRESS, None, None
    for r in sorted(records.values(), key=lambda r: r.instance_id):
        failed = [e for e in r.extensions or () if e.state == "Failed"]
        if failed:  # as Azure reports a scale set whose extension failed on an instance
            return (FAILED, "VMExtensionProvisioningError",
                    f"VM has reported a failure when processing extension "
                    f"'{failed[0].name}' (instance {r.instance_id}). Error message: "
                    f"{failed[0].message}")
    return SUCCEEDED, None, None


def settle_scale_set_put(tx: Tx, scale_set_id: str, now: datetime) -> str | None:
    """For the reconcile pass, after it wrote a scale set's instances: if the scale set's
    marked PUT is now done, finish that operation and clear the mark (as polling it would).

    Returns the state a GET shows from now on: ``Creating`` / ``Updating`` while the PUT
    is still running, None when it is not (any more). One primary-key read when nothing
    is marked; the instances are read only while a PUT is marked.
    """
    marked = provisioning(tx, scale_set_id)
    if marked is None:
        return None
    state, op_id = marked
    op = get_operation(tx, op_id)
    if op is None or op.status != IN_PROGRESS:  # finished elsewhere: only the mark is left
        clear_provisioning(tx, scale_set_id, op_id)
        return None
    outcome = scale_set_put_outcome(tx, scale_set_id)
    if outcome[0] == IN_PROGRESS:
        return state
    finish_operation(tx, op, outcome, now)
    return None
