"""Power and instance verbs: start, powerOff, restart, deallocate, redeploy, reimageall, delete.

On the scale set (``virtualMachineScaleSets/{name}/<verb>``, optional body
``{"instanceIds": [...]}``; absent, empty or ``["*"]`` means every instance)
and on one instance (``virtualMachineScaleSets/{name}/virtualMachines/{id}/<verb>``,
no body), as azure-mgmt-compute's ``VirtualMachineScaleSetsOperations`` /
``VirtualMachineScaleSetVMsOperations`` and ``az vmss start|stop|restart|
deallocate|reimage|delete-instances`` send them. Each answers 202 with the LRO
headers; the operation ends when the instances are in the state asked for
(``lro.POWER``), reimaged (``lro.RUN``) or gone (``lro.INSTANCES_DELETE``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from scaleset.api import lro
from scaleset.api.auth import WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import ACCEPTED, SCALE_SET, compute_version, load_scale_set
from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.instance import PowerAction
from scaleset.reconcile import commands
from scaleset.store.repository import ScaleSetRow

router = APIRouter(tags=["powerAndInstanceVerbs"])
INSTANCE = SCALE_SET + "/virtualMachines/{instance_id}"
MAX_ID_LENGTH = 32  # the store's instance id column


def instance_ids(body: Any, *, required: bool) -> list[str] | None:
    """The body's ``instanceIds`` (``None``: every instance), checked and limited.

    >>> instance_ids({"instanceIds": ["0", "2"]}, required=False)
    ['0', '2']
    >>> instance_ids({"instanceIds": ["*"]}, required=False) is None
    True
    """
    if body is None or body == {}:
        if required:
            raise InvalidParameter(
                "Required parameter 'instanceIds' is missing (null): name the instances to "
                'delete, e.g. {"instanceIds": ["0", "3"]} (["*"] for all)',
                target="instanceIds")
        return None
    if not isinstance(body, dict):
        raise InvalidParameter('the request body must be a JSON object such as '
                               '{"instanceIds": ["0", "3"]}', target="body")
    ids = body.get("instanceIds")
    if ids is None and not required:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH
                                            for i in ids):
        raise InvalidParameter(
            "instanceIds must be a list of instance id strings (each 1 to "
            f'{MAX_ID_LENGTH} characters), e.g. {{"instanceIds": ["0", "3"]}}',
            target="instanceIds")
    if len(ids) > commands.MAX_INSTANCE_IDS:
        raise InvalidParameter(f"instanceIds names {len(ids)} instances; at most "
                               f"{commands.MAX_INSTANCE_IDS} per request. Split the request.",
                               target="instanceIds")
    if not ids:
        if required:
            raise InvalidParameter("instanceIds must name at least one instance (['*'] for "
                                   "all)", target="instanceIds")
        return None
    if "*" in ids:
        if len(ids) > 1:
            raise InvalidParameter("instanceIds is either ['*'] (every instance) or a list of "
                                   "instance ids, not both", target="instanceIds")
        return None
    return list(ids)


def _instance(context: ApiContext, subscription: str, resource_group: str, name: str,
              instance_id: str) -> ScaleSetRow:
    row = load_scale_set(context.store, subscription, resource_group, name)
    with context.store.transaction() as tx:
        exists = instance_id in tx.instances(row.id)
    if not exists:
        raise NotFound(f"The entity was not found: instance '{instance_id}' of scale set "
                       f"'{row.name}'.", code="NotFound")
    return row


def _power(context: ApiContext, request: Request, row: ScaleSetRow, subscription: str,
           resource_id: str, action: PowerAction, ids: list[str] | None, *,
           whole_scale_set: bool, skip_shutdown: bool = False) -> Response:
    requested = commands.request_power(
        context.store, scale_set_id=row.id, instance_ids=ids, action=action,
        now=context.clock.now(), skip_shutdown=skip_shutdown, whole_scale_set=whole_scale_set)
    headers = lro.begin(context, request, kind=lro.POWER, resource_id=resource_id,
                        location=row.location, subscription=subscription,
                        scale_set_id=row.id,
                        data={"opId": requested.op_id, "action": str(action),
                              "instanceIds": list(requested.instance_ids)})
    context.notify(row.id)
    return Response(status_code=202, headers=headers)


def _scale_set_power(context: ApiContext, request: Request, subscription: str,
                     resource_group: str, name: str, body: Any, action: PowerAction,
                     skip_shutdown: bool = False) -> Response:
    row = load_scale_set(context.store, subscription, resource_group, name)
    ids = instance_ids(body, required=False)
    return _power(context, request, row, subscription, row.model.id or row.id, action, ids,
                  whole_scale_set=ids is None, skip_shutdown=skip_shutdown)


def _vm_power(context: ApiContext, request: Request, subscription: str, resource_group: str,
              name: str, instance_id: str, action: PowerAction,
              skip_shutdown: bool = False) -> Response:
    row = _instance(context, subscription, resource_group, name, instance_id)
    return _power(context, request, row, subscription,
                  f"{row.model.id or row.id}/virtualMachines/{instance_id}", action,
                  [instance_id], whole_scale_set=False, skip_shutdown=skip_shutdown)


def _no_hibernate(hibernate: bool | None) -> None:
    if hibernate:
        raise InvalidParameter(
            "Hibernation is not supported for this scale set: a Uniform scale set's instances "
            "cannot hibernate. Leave out hibernate (or send false) to deallocate them.",
            target="hibernate")


# -- the scale set ---------------------------------------------------------------------
@router.post(SCALE_SET + "/start", status_code=202, responses=ACCEPTED)
def start(subscription: str, resource_group: str, name: str, request: Request,
          body: Any = Body(default=None), _v: str = Depends(compute_version),
          _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)) -> Response:
    """Start the instances (boot their OS disks again); running ones are left as they are."""
    return _scale_set_power(context, request, subscription, resource_group, name, body,
                            PowerAction.START)


@router.post(SCALE_SET + "/powerOff", status_code=202, responses=ACCEPTED)
def power_off(subscription: str, resource_group: str, name: str, request: Request,
              body: Any = Body(default=None),
              skip_shutdown: bool = Query(default=False, alias="skipShutdown"),
              _v: str = Depends(compute_version), _a: object = Depends(WRITE),
              context: ApiContext = Depends(request_context)) -> Response:
    """Stop the instances, keeping their disks and addresses (``az vmss stop``)."""
    return _scale_set_power(context, request, subscription, resource_group, name, body,
                            PowerAction.POWER_OFF, skip_shutdown)


@router.post(SCALE_SET + "/restart", status_code=202, responses=ACCEPTED)
def restart(subscription: str, resource_group: str, name: str, request: Request,
            body: Any = Body(default=None), _v: str = Depends(compute_version),
            _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
            ) -> Response:
    """Stop, then start the instances."""
    return _scale_set_power(context, request, subscription, resource_group, name, body,
                            PowerAction.RESTART)


@router.post(SCALE_SET + "/deallocate", status_code=202, responses=ACCEPTED)
def deallocate(subscription: str, resource_group: str, name: str, request: Request,
               body: Any = Body(default=None),
               hibernate: bool | None = Query(default=None),
               _v: str = Depends(compute_version), _a: object = Depends(WRITE),
               context: ApiContext = Depends(request_context)) -> Response:
    """Stop the instances and release their addresses; disks are kept."""
    _no_hibernate(hibernate)
    return _scale_set_power(context, request, subscription, resource_group, name, body,
                            PowerAction.DEALLOCATE)


@router.post(SCALE_SET + "/redeploy", status_code=202, responses=ACCEPTED)
def redeploy(subscription: str, resource_group: str, name: str, request: Request,
             body: Any = Body(default=None), _v: str = Depends(compute_version),
             _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
             ) -> Response:
    """Move the instances to a new host: new processes and address, the same disks."""
    return _scale_set_power(context, request, subscription, resource_group, name, body,
                            PowerAction.REDEPLOY)


@router.post(SCALE_SET + "/reimageall", status_code=202, responses=ACCEPTED)
def reimage_all(subscription: str, resource_group: str, name: str, request: Request,
                body: Any = Body(default=None), _v: str = Depends(compute_version),
                _a: object = Depends(WRITE), context: ApiContext = Depends(request_context)
                ) -> Response:
    """A fresh OS disk and empty data disks for the instances (a run of kind Reimage)."""
    row = load_scale_set(context.store, subscription, resource_group, name)
    run = commands.reimage_all(context.store, scale_set_id=row.id,
                               instance_ids=instance_ids(body, required=False),
                               now=context.clock.now(), settings=context.settings)
    headers = lro.begin(context, request, kind=lro.RUN, resource_id=row.model.id or row.id,
                        location=row.location, subscription=subscription,
                        scale_set_id=row.id, run_id=run.run_id)
    context.notify(row.id)
    return Response(status_code=202, headers=headers)


@router.post(SCALE_SET + "/delete", status_code=202, responses=ACCEPTED)
def delete_instances(subscription: str, resource_group: str, name: str, request: Request,
                     body: Any = Body(default=None),
                     force_deletion: bool = Query(default=False, alias="forceDeletion"),
                     _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> Response:
    """Delete the named instances (``az vmss delete-instances``); capacity drops as many.

    Scale-in protection does not stop an explicit delete. ``forceDeletion`` is
    accepted; instances here are always stopped at once when deleted.
    """
    row = load_scale_set(context.store, subscription, resource_group, name)
    ids = commands.delete_instances(context.store, scale_set_id=row.id,
                                    instance_ids=instance_ids(body, required=True),
                                    now=context.clock.now())
    headers = lro.begin(context, request, kind=lro.INSTANCES_DELETE,
                        resource_id=row.model.id or row.id, location=row.location,
                        subscription=subscription, scale_set_id=row.id,
                        data={"instanceIds": ids, "forceDeletion": force_deletion})
    context.notify(row.id)
    return Response(status_code=202, headers=headers)


# -- one instance ----------------------------------------------------------------------
@router.post(INSTANCE + "/start", status_code=202, responses=ACCEPTED)
def start_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                   request: Request, _v: str = Depends(compute_version),
                   _a: object = Depends(WRITE),
                   context: ApiContext = Depends(request_context)) -> Response:
    return _vm_power(context, request, subscription, resource_group, name, instance_id,
                     PowerAction.START)


@router.post(INSTANCE + "/powerOff", status_code=202, responses=ACCEPTED)
def power_off_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                       request: Request,
                       skip_shutdown: bool = Query(default=False, alias="skipShutdown"),
                       _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                       context: ApiContext = Depends(request_context)) -> Response:
    return _vm_power(context, request, subscription, resource_group, name, instance_id,
                     PowerAction.POWER_OFF, skip_shutdown)


@router.post(INSTANCE + "/restart", status_code=202, responses=ACCEPTED)
def restart_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                     request: Request, _v: str = Depends(compute_version),
                     _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> Response:
    return _vm_power(context, request, subscription, resource_group, name, instance_id,
                     PowerAction.RESTART)


@router.post(INSTANCE + "/deallocate", status_code=202, responses=ACCEPTED)
def deallocate_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                        request: Request, _v: str = Depends(compute_version),
                        _a: object = Depends(WRITE),
                        context: ApiContext = Depends(request_context)) -> Response:
    return _vm_power(context, request, subscription, resource_group, name, instance_id,
                     PowerAction.DEALLOCATE)


@router.post(INSTANCE + "/redeploy", status_code=202, responses=ACCEPTED)
def redeploy_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                      request: Request, _v: str = Depends(compute_version),
                      _a: object = Depends(WRITE),
                      context: ApiContext = Depends(request_context)) -> Response:
    return _vm_power(context, request, subscription, resource_group, name, instance_id,
                     PowerAction.REDEPLOY)


@router.post(INSTANCE + "/reimageall", status_code=202, responses=ACCEPTED)
def reimage_all_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                         request: Request, _v: str = Depends(compute_version),
                         _a: object = Depends(WRITE),
                         context: ApiContext = Depends(request_context)) -> Response:
    """A fresh OS disk and empty data disks for this instance."""
    row = _instance(context, subscription, resource_group, name, instance_id)
    run = commands.reimage_all(context.store, scale_set_id=row.id, instance_ids=[instance_id],
                               now=context.clock.now(), settings=context.settings)
    headers = lro.begin(context, request, kind=lro.RUN,
                        resource_id=f"{row.model.id or row.id}/virtualMachines/{instance_id}",
                        location=row.location, subscription=subscription,
                        scale_set_id=row.id, run_id=run.run_id)
    context.notify(row.id)
    return Response(status_code=202, headers=headers)
