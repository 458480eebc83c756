"""The status of long-running operations (``Azure-AsyncOperation`` and ``Location`` URLs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from scaleset.api import lro
from scaleset.api.auth import READ
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import operation_version
from scaleset.errors import NotFound

router = APIRouter(tags=["operations"])

OPERATION = "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/" \
            "operations/{operation_id}"


@router.get(OPERATION, response_model=None)
def operation_status(subscription: str, location: str, operation_id: str,
                     monitor: bool = Query(default=False),
                     _v: str = Depends(operation_version), _a: object = Depends(READ),
                     context: ApiContext = Depends(request_context)) -> Response:
    """InProgress (with ``Retry-After: 1``), then Succeeded, Failed or Canceled.

    With ``monitor=true`` (the ``Location`` URL): 202 while running, then 200 when it
    succeeded, with the resource for a PUT/PATCH and an empty body otherwise (every
    SDK's poller accepts 200 there; the JavaScript one refuses 204). A failed or
    cancelled operation answers 409 with its error: a client that polls only
    ``Location`` treats any 2xx but 202 as success, so the failure must not be one.
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
        code = op.error_code or ("OperationCanceled" if op.status == lro.CANCELED
                                 else "OperationFailed")
        body: dict[str, Any] = {"error": {"code": code,
                                          "message": op.error_message or op.status}}
        return JSONResponse(body, status_code=409)
    return JSONResponse(op.to_wire(), headers=headers)


def _final(context: ApiContext, op: lro.Operation) -> Response:
    """What a succeeded operation's ``Location`` answers: 200, with the resource if any."""
    with context.store.transaction() as tx:
        final = lro.final_resource(tx, op)
    if final is None:
        return Response(status_code=200)
    body, etag = final
    return JSONResponse(body, status_code=200, headers={"ETag": etag} if etag else {})
