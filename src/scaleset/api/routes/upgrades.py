"""Rolling upgrades: start, cancel, approve a deferred one, latest status, OS upgrade history,
manual upgrade, reimage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from scaleset.api import lro, paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import ACCEPTED, SCALE_SET, compute_version, load_scale_set
from scaleset.errors import InvalidParameter
from scaleset.model.upgrade import RollingUpgradeStatusInfo
from scaleset.reconcile import commands, views

router = APIRouter(tags=["rollingUpgrades"])


def _accepted(context: ApiContext, request: Request, subscription: str, row_id: str,
              location: str, resource_id: str, kind: str, run_id: str) -> Response:
    headers = lro.begin(context, request, kind=kind, resource_id=resource_id, location=location,
                        subscription=subscription, scale_set_id=row_id, run_id=run_id)
    context.notify(row_id)
    return Response(status_code=202, headers=headers)


@router.post(SCALE_SET + "/osRollingUpgrade", status_code=202, responses=ACCEPTED)
def start_os_upgrade(subscription: str, resource_group: str, name: str, request: Request,
                     _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> Response:
    """Start a User run to the latest image version now; the operation ends with the run."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    run = commands.start_os_upgrade(context.store, scale_set_id=row.id, now=context.clock.now(),
                                    settings=context.settings)
    return _accepted(context, request, subscription, row.id, row.location,
                     f"{row.model.id}/rollingUpgrades/latest", lro.RUN, run.run_id)


@router.post(SCALE_SET + "/rollingUpgrades/cancel", status_code=202, responses=ACCEPTED)
def cancel(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(compute_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Stop the active run after its current batch; the operation ends when it has stopped."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    run = commands.cancel(context.store, scale_set_id=row.id, now=context.clock.now())
    return _accepted(context, request, subscription, row.id, row.location,
                     f"{row.model.id}/rollingUpgrades/latest", lro.CANCEL, run.run_id)


@router.post(SCALE_SET + "/approveRollingUpgrade", status_code=202, responses=ACCEPTED)
def approve_rolling_upgrade(subscription: str, resource_group: str, name: str,
                            request: Request, body: Any = Body(default=None),
                            _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                            context: ApiContext = Depends(request_context)) -> Response:
    """Start the OS upgrade ``osRollingUpgradeDeferral`` holds (optionally for
    ``instanceIds`` only); the operation ends with the run. 409 when none awaits approval."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    run = commands.approve_rolling_upgrade(
        context.store, scale_set_id=row.id, instance_ids=_instance_ids(body, required=False),
        now=context.clock.now(), settings=context.settings)
    return _accepted(context, request, subscription, row.id, row.location,
                     f"{row.model.id}/rollingUpgrades/latest", lro.RUN, run.run_id)


@router.get(SCALE_SET + "/rollingUpgrades/latest",
            responses={200: {"model": RollingUpgradeStatusInfo}})
def latest(subscription: str, resource_group: str, name: str,
           _v: str = Depends(compute_version), _a: object = Depends(READ),
           context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    row = load_scale_set(context.store, subscription, resource_group, name)
    status = views.latest_rolling_upgrade(context.store, scale_set_id=row.id)
    body = status.to_wire()
    body["id"] = f"{row.model.id}/rollingUpgrades/latest"
    return body


@router.get(SCALE_SET + "/rollout")
def rollout(subscription: str, resource_group: str, name: str,
            run_id: str | None = Query(default=None, alias="runId"),
            _v: str = Depends(compute_version), _a: object = Depends(READ),
            context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """The live view of the latest rolling upgrade (or of ``runId``): its batches, its gates
    against their thresholds, and each instance's state in it with the health wait left."""
    if run_id is not None and (len(run_id) > 64 or not run_id.replace("-", "").isalnum()):
        raise InvalidParameter("runId must be a run's id (letters, digits and '-')",
                               target="runId")
    row = load_scale_set(context.store, subscription, resource_group, name)
    return views.rollout(context.store, scale_set_id=row.id, now=context.clock.now(),
                         run_id=run_id)


@router.get(SCALE_SET + "/osUpgradeHistory")
def os_upgrade_history(subscription: str, resource_group: str, name: str, request: Request,
                       _v: str = Depends(compute_version), _a: object = Depends(READ),
                       context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """The last five OS upgrade attempts of the past two months, newest first."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    items = views.os_upgrade_history(context.store, scale_set_id=row.id,
                                     now=context.clock.now())
    return paging.page(request, [i.to_wire() for i in items], context.page_size)


def _instance_ids(body: Any, *, required: bool) -> list[str] | None:
    if body is None or body == {}:
        if required:
            raise InvalidParameter("instanceIds is required: name the instances to act on",
                                   target="instanceIds")
        return None
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object", target="body")
    ids = body.get("instanceIds")
    if ids is None and not required:
        return None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidParameter("instanceIds must be a non-empty list of instance id strings, "
                               'e.g. {"instanceIds": ["0", "3"]}', target="instanceIds")
    return list(ids)


@router.post(SCALE_SET + "/manualupgrade", status_code=202, responses=ACCEPTED)
def manual_upgrade(subscription: str, resource_group: str, name: str, request: Request,
                   body: Any = Body(default=None), _v: str = Depends(compute_version),
                   _a: object = Depends(WRITE),
                   context: ApiContext = Depends(request_context)) -> Response:
    """Bring the named instances to the latest model."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    ids = _instance_ids(body, required=True)
    run = commands.manual_upgrade(context.store, scale_set_id=row.id, instance_ids=ids or [],
                                  now=context.clock.now(), settings=context.settings)
    return _accepted(context, request, subscription, row.id, row.location, row.model.id or "",
                     lro.RUN, run.run_id)


@router.post(SCALE_SET + "/reimage", status_code=202, responses=ACCEPTED)
def reimage(subscription: str, resource_group: str, name: str, request: Request,
            body: Any = Body(default=None), _v: str = Depends(compute_version),
            _a: object = Depends(WRITE),
            context: ApiContext = Depends(request_context)) -> Response:
    """Give the named instances (all, without ``instanceIds``) a fresh OS disk."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    run = commands.reimage(context.store, scale_set_id=row.id,
                           instance_ids=_instance_ids(body, required=False),
                           now=context.clock.now(), settings=context.settings)
    return _accepted(context, request, subscription, row.id, row.location, row.model.id or "",
                     lro.RUN, run.run_id)
