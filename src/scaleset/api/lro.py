"""Long-running operations, the way ARM and its SDK poller expect them.

Starting one records an operation row and answers with ``Azure-AsyncOperation``
(the status URL), ``Location`` (the same URL with ``monitor=true``) and
``Retry-After: 1``. The status is *derived* when polled, level-triggered
from the state of the world: a scale-set PUT is done when every instance
exists and has provisioned; ``osRollingUpgrade`` when its run has ended; a
delete when the resource is gone; a gallery image version's PUT when its
replication to every target region has ended. The first terminal answer is written back
so it never changes afterwards. The rows and their SQL live in ``store/operations.py``;
a scale set's PUT also marks the scale set row (``Creating`` / ``Updating``), so its GET
reads the state with the row and derives only while a PUT is marked
(``provisioning_state``).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from fastapi import Request

from scaleset.api.context import ApiContext
from scaleset.reconcile import galleries, power, resourcegroups, views
from scaleset.store import operations
from scaleset.store.operations import Operation, Outcome
from scaleset.store.repository import NotFoundError, Tx
from scaleset.upgrade.state import RunStatus

IN_PROGRESS: Final = operations.IN_PROGRESS
SUCCEEDED: Final = operations.SUCCEEDED
FAILED: Final = operations.FAILED
CANCELED: Final = operations.CANCELED

# What completes an operation.
SCALE_SET_PUT: Final = operations.SCALE_SET_PUT
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

__all__ = ["Operation", "begin", "final_resource", "poll", "provisioning_state"]


def begin(context: ApiContext, request: Request, *, kind: str, resource_id: str, location: str,
          subscription: str, scale_set_id: str | None = None, run_id: str | None = None,
          data: dict[str, Any] | None = None) -> dict[str, str]:
    """Record a new operation; the headers that tell the client where to poll."""
    op_id = str(uuid.uuid4())
    op = Operation(op_id, location.lower(), kind, resource_id, scale_set_id, run_id,
                   IN_PROGRESS, context.clock.now(), None, None, None, data or {})
    with context.store.transaction() as tx:
        operations.insert_operation(tx, op)
    api_version = request.query_params.get("api-version", "")
    base = str(request.base_url).rstrip("/")
    url = (f"{base}/subscriptions/{subscription}/providers/Microsoft.Compute/locations/"
           f"{location.lower()}/operations/{op_id}?api-version={api_version}")
    return {"Azure-AsyncOperation": url, "Location": url + "&monitor=true", "Retry-After": "1"}


def _derive(tx: Tx, op: Operation) -> Outcome:
    """(status, error code, error message) from the state of the world now."""
    if op.kind == SCALE_SET_PUT:
        return operations.scale_set_put_outcome(tx, op.scale_set_id or "")
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


def provisioning_state(tx: Tx, scale_set_id: str, marked: tuple[str, str] | None = None,
                       ) -> tuple[str | None, str | None]:
    """(``Creating`` / ``Updating`` while the scale set's latest PUT or PATCH is still
    running, else None; the id of a PUT this read saw finished, to ``settle``, else None).

    Read in the caller's transaction: the scale set's mark (``marked``, when the caller
    read it with the row), and while a PUT is marked, its derivation (as polling it does).
    The caller writes a finished PUT back afterwards (``settle``), in a write transaction
    of its own, so a read never turns into a write half-way.
    """
    if marked is None:
        marked = operations.provisioning(tx, scale_set_id)
    if marked is None:
        return None, None
    state, op_id = marked
    op = operations.get_operation(tx, op_id)
    if op is None or op.status != IN_PROGRESS or _derive(tx, op)[0] != IN_PROGRESS:
        return None, op_id
    return state, None


def settle(context: ApiContext, scale_set_id: str, op_id: str) -> None:
    """Write back a scale set PUT that a read saw finished: the operation's first terminal
    outcome (derived again, in this write transaction) and the scale set's mark cleared."""
    def work(tx: Tx) -> None:
        op = operations.get_operation(tx, op_id)
        if op is None or op.status != IN_PROGRESS:
            operations.clear_provisioning(tx, scale_set_id, op_id)
            return
        outcome = _derive(tx, op)
        if outcome[0] != IN_PROGRESS:
            operations.finish_operation(tx, op, outcome, context.clock.now())

    context.store.write(work)


def poll(context: ApiContext, op_id: str) -> Operation | None:
    """The operation with its status brought up to date (``None`` when unknown)."""
    with context.store.transaction() as tx:
        op = operations.get_operation(tx, op_id)
        if op is None or op.status != IN_PROGRESS:
            return op
        outcome = _derive(tx, op)
        if outcome[0] == IN_PROGRESS:
            return op
        now = context.clock.now()
        operations.finish_operation(tx, op, outcome, now)
        return op.finished(outcome, now)
