"""``virtualMachineScaleSets/{name}/virtualMachines``: the instances of a scale set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from scaleset.api import auth, lro, paging
from scaleset.api.auth import WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import (
    ACCEPTED,
    SCALE_SET,
    check_preconditions,
    compute_version,
    load_scale_set,
    scale_set_key,
    scale_set_not_found,
)
from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.instance import InstanceRecord
from scaleset.model.vm import ProtectionPolicy, ScaleSetVM, VMInstanceView
from scaleset.reconcile import commands, views
from scaleset.store.repository import ScaleSetRow

router = APIRouter(tags=["virtualMachineScaleSetVMs"])
INSTANCE = SCALE_SET + "/virtualMachines/{instance_id}"


def _expand(expand: str | None) -> bool:
    if expand is None:
        return False
    if expand.lower() in ("instanceview", "userdata", "resiliencyview"):
        return expand.lower() == "instanceview"
    raise InvalidParameter(f"$expand '{expand}' is not supported; use 'instanceView'",
                           target="$expand")


def _load(context: ApiContext, subscription: str, resource_group: str, name: str,
          instance_id: str) -> tuple[ScaleSetRow, InstanceRecord]:
    row = load_scale_set(context.store, subscription, resource_group, name)
    with context.store.transaction() as tx:
        record = tx.instances(row.id).get(instance_id)
    if record is None:
        raise NotFound(f"The entity was not found: instance '{instance_id}' of scale set "
                       f"'{row.name}'.", code="NotFound")
    return row, record


def _read(caller: auth.Credential, subscription: str, resource_group: str, name: str,
          instance_id: str) -> tuple[ScaleSetRow, InstanceRecord]:
    """``_load`` in the request's one transaction, its token checked first."""
    with caller.transaction() as tx:
        row = tx.get_scale_set(scale_set_key(subscription, resource_group, name))
        if row is None:
            raise scale_set_not_found(resource_group, name)
        record = tx.instances(row.id).get(instance_id)
    if record is None:
        raise NotFound(f"The entity was not found: instance '{instance_id}' of scale set "
                       f"'{row.name}'.", code="NotFound")
    return row, record


def _natural(instance_id: str) -> tuple[int, str]:
    return (int(instance_id), "") if instance_id.isascii() and instance_id.isdigit() \
        else (1 << 62, instance_id)


@router.get(SCALE_SET + "/virtualMachines")
def list_instances(subscription: str, resource_group: str, name: str, request: Request,
                   expand: str | None = Query(default=None, alias="$expand"),
                   _v: str = Depends(compute_version),
                   caller: auth.Credential = Depends(auth.read_in_tx)) -> dict[str, Any]:
    with caller.transaction() as tx:  # one transaction: the token, the row, its instances
        row = tx.get_scale_set(scale_set_key(subscription, resource_group, name))
        if row is None:
            raise scale_set_not_found(resource_group, name)
        records = tx.instances(row.id)
    context = caller.context
    show = _expand(expand)
    items = [views.instance_resource(row, records[i], expand_instance_view=show).to_wire()
             for i in sorted(records, key=_natural)]
    return paging.page(request, items, context.page_size)


@router.get(INSTANCE, responses={200: {"model": ScaleSetVM}})
def get_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                 expand: str | None = Query(default=None, alias="$expand"),
                 _v: str = Depends(compute_version),
                 caller: auth.Credential = Depends(auth.read_in_tx)) -> dict[str, Any]:
    row, record = _read(caller, subscription, resource_group, name, instance_id)
    return views.instance_resource(row, record, expand_instance_view=_expand(expand)).to_wire()


@router.get(INSTANCE + "/instanceView", responses={200: {"model": VMInstanceView}})
def get_instance_view(subscription: str, resource_group: str, name: str, instance_id: str,
                      _v: str = Depends(compute_version),
                      caller: auth.Credential = Depends(auth.read_in_tx)) -> dict[str, Any]:
    row, record = _read(caller, subscription, resource_group, name, instance_id)
    body = views.instance_resource(row, record, expand_instance_view=True).to_wire()
    view: dict[str, Any] = body["properties"]["instanceView"]
    return view


@router.put(INSTANCE, responses={200: {"model": ScaleSetVM}})
def update_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                    request: Request, body: Any = Body(default=None),
                    _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                    context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """Update an instance; its ``protectionPolicy`` is the part scaleset lets you change."""
    row, record = _load(context, subscription, resource_group, name, instance_id)
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object", target="body")
    raw = (body.get("properties") or {}).get("protectionPolicy")
    policy = ProtectionPolicy.model_validate(raw) if raw is not None else ProtectionPolicy(
        protect_from_scale_in=record.protect_from_scale_in,
        protect_from_scale_set_actions=record.protect_from_scale_set_actions)
    updated = commands.set_protection(
        context.store, scale_set_id=row.id, instance_id=instance_id,
        protect_from_scale_in=policy.protect_from_scale_in,
        protect_from_scale_set_actions=policy.protect_from_scale_set_actions,
        now=context.clock.now(),  # If-Match checked in the write, against what is stored
        check=lambda r, rec: check_preconditions(request, views.instance_resource(r, rec).etag))
    context.notify(row.id)
    return views.instance_resource(row, updated).to_wire()


@router.post(INSTANCE + "/reimage", status_code=202, responses=ACCEPTED)
def reimage_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                     request: Request, _v: str = Depends(compute_version),
                     _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> Response:
    row, _ = _load(context, subscription, resource_group, name, instance_id)
    run = commands.reimage(context.store, scale_set_id=row.id, instance_ids=[instance_id],
                           now=context.clock.now(), settings=context.settings)
    headers = lro.begin(context, request, kind=lro.RUN, resource_id=f"{row.model.id}/"
                        f"virtualMachines/{instance_id}", location=row.location,
                        subscription=subscription, scale_set_id=row.id, run_id=run.run_id)
    context.notify(row.id)
    return Response(status_code=202, headers=headers)


@router.delete(INSTANCE, status_code=202,
               responses=ACCEPTED | {204: {"description": "No such instance"}})
def delete_instance(subscription: str, resource_group: str, name: str, instance_id: str,
                    request: Request, _v: str = Depends(compute_version),
                    _a: object = Depends(WRITE),
                    context: ApiContext = Depends(request_context)) -> Response:
    row = load_scale_set(context.store, subscription, resource_group, name)
    with context.store.transaction() as tx:
        exists = instance_id in tx.instances(row.id)
    if not exists:
        return Response(status_code=204)
    commands.delete_instance(context.store, scale_set_id=row.id, instance_id=instance_id,
                             now=context.clock.now())
    headers = lro.begin(context, request, kind=lro.INSTANCE_DELETE,
                        resource_id=f"{row.model.id}/virtualMachines/{instance_id}",
                        location=row.location, subscription=subscription,
                        scale_set_id=row.id, data={"instanceId": instance_id})
    context.notify(row.id)
    return Response(status_code=202, headers=headers)


SERIAL_LOG = INSTANCE + "/bootDiagnostics/serialConsoleLog"


@router.post(INSTANCE + "/retrieveBootDiagnosticsData")
def retrieve_boot_diagnostics(subscription: str, resource_group: str, name: str,
                              instance_id: str, request: Request,
                              _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                              context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """Where to read the instance's serial console log (there is no screenshot).

    A contributor's action, as in ARM (``.../retrieveBootDiagnosticsData/action`` is not
    among Reader's actions). The URI is on this server and needs a bearer token.
    """
    _load(context, subscription, resource_group, name, instance_id)
    log_url = request.url_for("serial_console_log", subscription=subscription,
                              resource_group=resource_group, name=name,
                              instance_id=instance_id)
    return {"consoleScreenshotBlobUri": None,
            "serialConsoleLogBlobUri": f"{log_url}?api-version="
                                       f"{request.query_params.get('api-version', '')}"}


@router.get(SERIAL_LOG, name="serial_console_log",
            responses={200: {"content": {"text/plain": {}}}})
def serial_console_log(subscription: str, resource_group: str, name: str, instance_id: str,
                       _v: str = Depends(compute_version), _a: object = Depends(WRITE),
                       context: ApiContext = Depends(request_context)) -> Response:
    """The instance's serial console: what its processes wrote, and the control plane's notes.

    Contributors only, like the action that hands out its URI: in ARM that URI is a SAS a
    reader never gets, and what the processes wrote may hold their secrets."""
    row, _ = _load(context, subscription, resource_group, name, instance_id)
    text = context.console_log(row.id, instance_id) if context.console_log else None
    if text is None:
        raise NotFound(f"boot diagnostics of instance '{instance_id}' of scale set '{row.name}' "
                       "are not available yet; the instance has not been created on this "
                       "control plane", code="NotFound")
    return Response(content=text, media_type="text/plain; charset=utf-8")
