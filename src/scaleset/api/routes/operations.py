"""The status of long-running operations (``Azure-AsyncOperation`` and ``Location`` URLs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from scaleset.api import lro
from scaleset.api.auth import READ
from scaleset.api.context import ApiContext, get_context
from scaleset.api.routes.common import operation_version
from scaleset.errors import NotFound
from scaleset.reconcile import views

router = APIRouter(tags=["operations"])

OPERATION = "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/" \
            "operations/{operation_id}"


@router.get(OPERATION, response_model=None)
def operation_status(subscription: str, location: str, operation_id: str,
                     monitor: bool = Query(default=False),
                     _v: str = Depends(operation_version), _a: object = Depends(READ),
                     context: ApiContext = Depends(get_context)) -> Response:
    """InProgress (with ``Retry-After: 1``), then Succeeded, Failed or Canceled.

    With ``monitor=true`` (the ``Location`` URL): 202 while running, then 200
    when it succeeded, with the resource for a scale-set PUT/PATCH and an empty
    body otherwise (every SDK's poller accepts 200 there; the JavaScript one
    refuses 204), or the operation's error.
    """
    op = lro.poll(context, operation_id)
    if op is None:
        raise NotFound(f"operation '{operation_id}' was not found", code="NotFound")
    running = op.status == lro.IN_PROGRESS
    headers = {"Retry-After": "1"} if running else {}
    if monitor:
        if running:
            return Response(status_code=202, headers=headers)
        if op.status == lro.SUCCEEDED:
            return _final(context, op)
        body: dict[str, Any] = {"error": {"code": op.error_code or "OperationFailed",
                                          "message": op.error_message or op.status}}
        return JSONResponse(body, status_code=200)
    return JSONResponse(op.to_wire(), headers=headers)


def _final(context: ApiContext, op: lro.Operation) -> Response:
    """What a succeeded operation's ``Location`` answers: 200, with the resource if any."""
    if op.kind == lro.SCALE_SET_PUT and op.scale_set_id:
        with context.store.transaction() as tx:
            row = tx.get_scale_set(op.scale_set_id)
        if row is not None:
            return JSONResponse(views.scale_set_resource(row), status_code=200,
                                headers={"ETag": row.etag})
    return Response(status_code=200)
