"""Long-running operations, the way ARM and its SDK poller expect them.

Starting one records an operation row and answers with ``Azure-AsyncOperation``
(the status URL), ``Location`` (the same URL with ``monitor=true``) and
``Retry-After: 1``. The status is *derived* when polled, level-triggered
from the state of the world: a scale-set PUT is done when every instance
exists and has provisioned; ``osRollingUpgrade`` when its run has ended; a
delete when the resource is gone; a gallery image version's PUT when its
replication to every target region has ended. The first terminal answer is written back
so it never changes afterwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import Request
from sqlalchemy import insert, select, update

from scaleset.api.context import ApiContext
from scaleset.model.instance import ProvisioningState
from scaleset.reconcile import galleries, power, resourcegroups, views
from scaleset.store import tables as t
from scaleset.store.repository import NotFoundError, Tx
from scaleset.upgrade.state import RunStatus

IN_PROGRESS: Final = "InProgress"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELED: Final = "Canceled"

# What completes an operation.
SCALE_SET_PUT: Final = "scaleSetPut"
SCALE_SET_DELETE: Final = "scaleSetDelete"
RUN: Final = "run"  # osRollingUpgrade, manualupgrade, reimage: when the run ends
CANCEL: Final = "cancel"  # rollingUpgrades/cancel: when the run has stopped
INSTANCE_DELETE: Final = "instanceDelete"
GALLERY_IMAGE_VERSION_PUT: Final = "galleryImageVersionPut"  # when replication has ended
# A resource group's DELETE: when nothing is left in it (its scale sets are the last to go).
RESOURCE_GROUP_DELETE: Final = "resourceGroupDelete"
# Power verbs (start, powerOff, restart, deallocate, redeploy) on a scale set or one
# instance: when every instance named in ``data`` reached the state asked for.
POWER: Final = "power"
# POST .../delete (az vmss delete-instances): when every instance named is gone.
INSTANCES_DELETE: Final = "instancesDelete"


@dataclass(frozen=True)
class Operation:
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
        out: dict[str, Any] = {"name": self.id, "status": self.status,
                               "startTime": _iso(self.start_time)}
        if self.end_time is not None:
            out["endTime"] = _iso(self.end_time)
        if self.error_code:
            out["error"] = {"code": self.error_code, "message": self.error_message or ""}
        return out


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def begin(context: ApiContext, request: Request, *, kind: str, resource_id: str, location: str,
          subscription: str, scale_set_id: str | None = None, run_id: str | None = None,
          data: dict[str, Any] | None = None) -> dict[str, str]:
    """Record a new operation; the headers that tell the client where to poll."""
    op_id = str(uuid.uuid4())
    with context.store.transaction() as tx:
        tx.conn.execute(insert(t.operations).values(
            id=op_id, location=location.lower(), kind=kind, resource_id=resource_id,
            scale_set_id=scale_set_id, run_id=run_id, status=IN_PROGRESS,
            start_time=context.clock.now(), data=data or {}))
    api_version = request.query_params.get("api-version", "")
    base = str(request.base_url).rstrip("/")
    url = (f"{base}/subscriptions/{subscription}/providers/Microsoft.Compute/locations/"
           f"{location.lower()}/operations/{op_id}?api-version={api_version}")
    return {"Azure-AsyncOperation": url, "Location": url + "&monitor=true", "Retry-After": "1"}


def _load(tx: Tx, op_id: str) -> Operation | None:
    row = tx.conn.execute(select(t.operations).where(t.operations.c.id == op_id)).first()
    if row is None:
        return None
    return Operation(row.id, row.location, row.kind, row.resource_id, row.scale_set_id,
                     row.run_id, row.status, row.start_time, row.end_time, row.error_code,
                     row.error_message, dict(row.data))


def _derive(tx: Tx, op: Operation) -> tuple[str, str | None, str | None]:
    """(status, error code, error message) from the state of the world now."""
    if op.kind == SCALE_SET_PUT:
        row = tx.get_scale_set(op.scale_set_id or "")
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
    if op.kind == SCALE_SET_DELETE:
        gone = tx.get_scale_set(op.scale_set_id or "") is None
        return (SUCCEEDED, None, None) if gone else (IN_PROGRESS, None, None)
    if op.kind == INSTANCE_DELETE:
        records = tx.instances(op.scale_set_id or "")
        return (IN_PROGRESS, None, None) if op.data.get("instanceId") in records \
            else (SUCCEEDED, None, None)
    if op.kind in (RUN, CANCEL):
        try:
            run = tx.get_run(op.run_id or "")
        except NotFoundError:
            return FAILED, "NotFound", "the rolling upgrade no longer exists"
        if not run.status.is_terminal:
            return IN_PROGRESS, None, None
        if op.kind == CANCEL or run.status is RunStatus.COMPLETED:
            return SUCCEEDED, None, None
        if run.status is RunStatus.CANCELLED:
            return CANCELED, "OperationCanceled", "the rolling upgrade was cancelled"
        error = run.error
        return FAILED, error.code if error else "RollingUpgradeFailed", \
            error.message if error else "the rolling upgrade faulted"
    if op.kind == GALLERY_IMAGE_VERSION_PUT:
        return galleries.put_outcome(tx.get_resource(op.resource_id))
    if op.kind == RESOURCE_GROUP_DELETE:
        done = resourcegroups.deletion_finished(tx, str(op.data.get("subscription", "")),
                                                str(op.data.get("name", "")))
        return (SUCCEEDED, None, None) if done else (IN_PROGRESS, None, None)
    if op.kind == POWER:
        ended = power.outcome(tx.instances(op.scale_set_id or ""), str(op.data.get("opId")),
                              [str(i) for i in op.data.get("instanceIds", [])])
        if not ended.done:
            return IN_PROGRESS, None, None
        return (FAILED if ended.error_code else SUCCEEDED), ended.error_code, \
            ended.error_message
    if op.kind == INSTANCES_DELETE:
        records = tx.instances(op.scale_set_id or "")
        left = [i for i in op.data.get("instanceIds", []) if i in records]
        return (IN_PROGRESS, None, None) if left else (SUCCEEDED, None, None)
    return FAILED, "InternalServerError", f"unknown operation kind {op.kind}"


def final_resource(tx: Tx, op: Operation) -> tuple[dict[str, Any], str | None] | None:
    """What a succeeded operation's ``Location`` URL answers with: the resource a PUT or
    PATCH wrote (and its etag), or None for operations without one (POST, DELETE)."""
    if op.kind == SCALE_SET_PUT and op.scale_set_id:
        row = tx.get_scale_set(op.scale_set_id)
        return (views.scale_set_resource(row), row.etag) if row is not None else None
    if op.kind == GALLERY_IMAGE_VERSION_PUT:
        resource = tx.get_resource(op.resource_id)
        return (galleries.view(resource), None) if resource is not None else None
    return None


def provisioning_state(context: ApiContext, scale_set_id: str) -> str | None:
    """``Creating`` / ``Updating`` while the scale set's latest PUT or PATCH is still running."""
    with context.store.transaction() as tx:
        row = tx.conn.execute(
            select(t.operations.c.id, t.operations.c.data)
            .where(t.operations.c.scale_set_id == scale_set_id,
                   t.operations.c.kind == SCALE_SET_PUT,
                   t.operations.c.status == IN_PROGRESS)
            .order_by(t.operations.c.start_time.desc())).first()
    if row is None:
        return None
    op = poll(context, row.id)
    if op is None or op.status != IN_PROGRESS:
        return None
    return "Creating" if row.data.get("created") else "Updating"


def poll(context: ApiContext, op_id: str) -> Operation | None:
    """The operation with its status brought up to date (``None`` when unknown)."""
    with context.store.transaction() as tx:
        op = _load(tx, op_id)
        if op is None or op.status != IN_PROGRESS:
            return op
        status, code, message = _derive(tx, op)
        if status == IN_PROGRESS:
            return op
        now = context.clock.now()
        tx.conn.execute(update(t.operations).where(
            t.operations.c.id == op_id, t.operations.c.status == IN_PROGRESS).values(
            status=status, end_time=now, error_code=code, error_message=message))
        return Operation(op.id, op.location, op.kind, op.resource_id, op.scale_set_id,
                         op.run_id, status, op.start_time, now, code, message, op.data)
