"""``Microsoft.Resources/deployments`` at resource-group scope: ARM template deployments.

PUT plans the template (``scaleset.templates``; a template that cannot work
is a 400 ``InvalidTemplate``, a resource type no route serves a 400
``InvalidTemplateDeployment`` naming it, and nothing is stored), stores the
deployment ``Accepted`` and answers 201 with ``Azure-AsyncOperation`` and
``Location`` (``.../operationStatuses/{run}``); ``api/deployments.py`` runs
it. GET, HEAD, DELETE (the record only, as in ARM; 409 while running), the
group's list, ``operations`` (one per resource, as ARM lists them),
``validate`` (the same checks as PUT, nothing stored) and ``cancel``.

Refused with a 400 naming the field: ``templateLink`` and ``parametersLink``
(the server fetches nothing from the network), Key Vault parameter
references, mode ``Complete`` (it would delete every resource of the group
the template does not name; not implemented), ``onErrorDeployment``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from scaleset.api import deployments as runs
from scaleset.api import paging
from scaleset.api.auth import READ, WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import resources_version
from scaleset.errors import InvalidParameter, NotFound, OperationNotAllowed
from scaleset.reconcile import resourcegroups
from scaleset.store.repository import ResourceRow
from scaleset.templates import limits
from scaleset.templates import plan as templates
from scaleset.templates.hashing import template_hash
from scaleset.templates.scope import Facts

router = APIRouter(tags=["deployments"])

DEPLOYMENTS = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
              "Microsoft.Resources/deployments"
DEPLOYMENT = DEPLOYMENTS + "/{name}"
LEGACY = "/subscriptions/{subscription}/resourceGroups/{resource_group}/deployments/{name}"
"""ARM's older path of a deployment's operations, without the provider (what az's
``deployment operation group list`` calls)."""
NAME: Final = re.compile(r"^[-\w.()]{1,64}$")


class DeploymentProperties(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    template: dict[str, Any] | None = None
    template_link: Any = Field(default=None, alias="templateLink")
    parameters: dict[str, Any] | None = None
    parameters_link: Any = Field(default=None, alias="parametersLink")
    mode: str = "Incremental"
    on_error_deployment: Any = Field(default=None, alias="onErrorDeployment")


class DeploymentRequest(BaseModel):
    """What a client PUTs (``Deployment`` in the Resources SDKs)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    properties: DeploymentProperties
    location: str | None = None
    tags: dict[str, str] | None = None


def _key(subscription: str, resource_group: str, name: str) -> str:
    return runs.deployment_id(subscription, resource_group, name).lower()


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise InvalidParameter(
            f"The deployment name '{name}' is not valid: use 1 to 64 letters, digits, '-', "
            "'_', '.', '(' or ')'.", target="deploymentName", code="InvalidDeploymentName")


def _checked(subscription: str, resource_group: str, name: str, body: DeploymentRequest,
             request: Request, context: ApiContext) -> templates.Plan:
    """Everything a PUT and a validate check, in order; the plan when all pass."""
    _check_name(name)
    group = resourcegroups.get_group(context.store, subscription, resource_group)
    props = body.properties
    for field, value, why in (
            ("templateLink", props.template_link, "the server fetches nothing from the "
             "network; send the template inline in properties.template"),
            ("parametersLink", props.parameters_link, "the server fetches nothing from the "
             "network; send the parameters inline in properties.parameters"),
            ("onErrorDeployment", props.on_error_deployment, "redeploying another deployment "
             "on error is not implemented")):
        if value is not None:
            raise InvalidParameter(f"properties.{field} is not supported here: {why}.",
                                   target=f"properties.{field}")
    if props.mode.lower() != "incremental":
        raise InvalidParameter(
            f"The deployment mode '{props.mode}' is not supported here: only 'Incremental' "
            "is (Complete mode would delete the group's resources the template leaves out).",
            target="properties.mode")
    if props.template is None:
        raise InvalidParameter("properties.template is required (templateLink is not "
                               "supported).", target="properties.template")
    size = len(json.dumps(props.parameters or {}, separators=(",", ":")))
    if size > limits.TEMPLATE_BYTES:
        raise InvalidParameter(f"The parameters are {size} bytes; at most "
                               f"{limits.TEMPLATE_BYTES} are allowed.",
                               target="properties.parameters")
    facts = Facts(subscription_id=subscription, resource_group=group.name,
                  deployment_name=name, resource_group_location=group.location,
                  api_versions=runs.API_VERSIONS)
    plan = templates.plan(props.template, props.parameters or {}, facts)
    runs.unserved(request.app, plan, name)
    return plan


def _view(subscription: str, resource_group: str, name: str, body: DeploymentRequest,
          plan: templates.Plan, state: str, context: ApiContext) -> dict[str, Any]:
    namespaces: dict[str, list[str]] = {}
    for r in plan.resources:
        namespace, _, rtype = r.type.partition("/")
        if rtype not in namespaces.setdefault(namespace, []):
            namespaces[namespace].append(rtype)
    names = {r.key: r for r in plan.resources}

    def short(r: templates.Resource) -> dict[str, str]:
        return {"id": r.id, "resourceType": r.type, "resourceName": r.name}

    out: dict[str, Any] = {
        "id": runs.deployment_id(subscription, resource_group, name), "name": name,
        "type": runs.TYPE,
        "properties": {
            "templateHash": template_hash(body.properties.template or {}),
            "parameters": dict(plan.parameters), "mode": "Incremental",
            "provisioningState": state, "timestamp": runs.iso(context.clock.now()),
            "duration": "PT0S", "correlationId": str(uuid.uuid4()),
            "providers": [{"namespace": ns, "resourceTypes": [
                {"resourceType": t} for t in types]} for ns, types in namespaces.items()],
            "dependencies": [{**short(r), "dependsOn": [short(names[d]) for d in
                                                        sorted(r.depends_on)]}
                             for r in plan.resources if r.depends_on],
        }}
    if body.tags:
        out["tags"] = body.tags
    return out


def _load(context: ApiContext, request: Request, subscription: str, resource_group: str,
          name: str) -> ResourceRow:
    """The deployment, first marked Failed if the runner it had is gone (a restart)."""
    key = _key(subscription, resource_group, name)
    with context.store.transaction() as tx:
        row = tx.get_resource(key)
    if row is None or row.type.lower() != runs.TYPE.lower():
        raise NotFound(f"Deployment '{name}' could not be found.", code="DeploymentNotFound")
    runner = runs.runner_of(request.app, context)
    if runner.orphaned(row):
        _mark_interrupted(runner, row)
        with context.store.transaction() as tx:
            row = tx.get_resource(key) or row
    return row


def _mark_interrupted(runner: runs.DeploymentRunner, row: ResourceRow) -> None:
    ended = {o["resourceId"].lower() for o in row.state.get("operations", [])
             if o.get("provisioningState") == runs.SUCCEEDED}
    unfinished = [r for r in row.state.get("resources", []) if r.lower() not in ended]

    def change(body: dict[str, Any], state: dict[str, Any]) -> None:
        props = body["properties"]
        if props.get("provisioningState") in runs.TERMINAL:
            return
        props["provisioningState"] = runs.FAILED
        props["error"] = {"code": "DeploymentFailed", "message": runs.DEPLOYMENT_FAILED,
                          "details": [{
                              "code": "ServerRestarted",
                              "message": "The server stopped while this deployment was running; "
                                         f"{len(unfinished)} resource(s) had not finished "
                                         f"({', '.join(unfinished[:20]) or 'none'}). Nothing "
                                         "was rolled back. PUT the deployment again: every "
                                         "resource PUT is idempotent, so it finishes the work."}]}
        for op in state.get("operations", []):
            if op.get("provisioningState") == runs.RUNNING:
                op["provisioningState"] = runs.FAILED
    runner.update(row.id, change)


def _headers(request: Request, subscription: str, resource_group: str, name: str, run: str,
             api_version: str) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    url = (f"{base}{runs.deployment_id(subscription, resource_group, name)}/operationStatuses/"
           f"{run}?api-version={api_version}")
    return {"Azure-AsyncOperation": url, "Location": url + "&monitor=true", "Retry-After": "1"}


@router.put(DEPLOYMENT, status_code=201)
def create_or_update(subscription: str, resource_group: str, name: str,
                     body: DeploymentRequest, request: Request,
                     api_version: str = Depends(resources_version), _a: object = Depends(WRITE),
                     context: ApiContext = Depends(request_context)) -> JSONResponse:
    """Start a deployment (201 Accepted, an LRO); 409 ``DeploymentActive`` while one runs."""
    plan = _checked(subscription, resource_group, name, body, request, context)
    runner = runs.runner_of(request.app, context)
    key = _key(subscription, resource_group, name)
    if not runner.claim(key):
        raise _active(name)
    try:
        now = context.clock.now()
        run = uuid.uuid4().hex
        view = _view(subscription, resource_group, name, body, plan, runs.ACCEPTED, context)
        with context.store.transaction() as tx:
            existing = tx.get_resource(key, for_update=True)
            # Claimed here, so a run of this runner is over; another process's counts while
            # its heartbeat is fresh.
            if existing is not None and existing.body.get("properties", {}).get(
                    "provisioningState") not in runs.TERMINAL and existing.state.get(
                    "runner") != runner.instance and not runner.orphaned(existing):
                raise _active(name)
            group = resourcegroups.visible_group(tx, subscription, resource_group)
            tx.put_resource(ResourceRow(
                id=view["id"], type=runs.TYPE, parent_id=None, subscription=subscription,
                resource_group=resource_group, name=name,
                location=group.location if group else "", body=view,
                state={"runner": runner.instance, "run": run, "operations": [],
                       "resources": [r.id for r in plan.resources]},
                created_at=existing.created_at if existing else now, updated_at=now))
            _trim(tx, subscription, resource_group)
        runner.start(key, view["id"], run, plan, request.headers.get("authorization"),
                     str(request.base_url))
    except BaseException:
        runner.release(key)
        raise
    return JSONResponse(view, status_code=200 if existing else 201,
                        headers=_headers(request, subscription, resource_group, name, run,
                                         api_version))


def _active(name: str) -> OperationNotAllowed:
    return OperationNotAllowed(
        f"The deployment '{name}' cannot be saved, because this would overwrite an existing "
        "deployment which is still active. Wait for it to end or cancel it "
        "(POST .../cancel).", code="DeploymentActive")


def _trim(tx: Any, subscription: str, resource_group: str) -> None:
    """Keep at most ARM's 800 deployments per group: drop the oldest finished ones."""
    rows = tx.resources(runs.TYPE, subscription=subscription, resource_group=resource_group)
    finished = sorted((r for r in rows if r.body.get("properties", {}).get(
        "provisioningState") in runs.TERMINAL), key=lambda r: r.updated_at)
    for row in finished[:max(0, len(rows) - runs.KEPT_PER_GROUP)]:
        tx.delete_resource(row.id)


@router.get(DEPLOYMENT)
def get(subscription: str, resource_group: str, name: str, request: Request,
        _v: str = Depends(resources_version), _a: object = Depends(READ),
        context: ApiContext = Depends(request_context)) -> JSONResponse:
    return JSONResponse(dict(_load(context, request, subscription, resource_group, name).body))


@router.head(DEPLOYMENT, status_code=204)
def exists(subscription: str, resource_group: str, name: str,
           _v: str = Depends(resources_version), _a: object = Depends(READ),
           context: ApiContext = Depends(request_context)) -> Response:
    with context.store.transaction() as tx:
        row = tx.get_resource(_key(subscription, resource_group, name))
    return Response(status_code=204 if row is not None else 404)


@router.delete(DEPLOYMENT, status_code=204)
def delete(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(resources_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Delete the deployment's record (its resources stay, as in ARM); 204 either way."""
    key = _key(subscription, resource_group, name)
    with context.store.transaction() as tx:
        exists = tx.get_resource(key) is not None
    if not exists:
        return Response(status_code=204)
    row = _load(context, request, subscription, resource_group, name)
    if row.body.get("properties", {}).get("provisioningState") not in runs.TERMINAL:
        raise OperationNotAllowed(
            f"The deployment '{name}' is still running and cannot be deleted; cancel it "
            "(POST .../cancel) or wait for it to end.", code="DeploymentActive")
    with context.store.transaction() as tx:
        tx.delete_resource(key)
    return Response(status_code=204)


def _list(subscription: str, resource_group: str, request: Request,
          context: ApiContext) -> dict[str, Any]:
    resourcegroups.get_group(context.store, subscription, resource_group)
    with context.store.transaction() as tx:
        rows = tx.resources(runs.TYPE, subscription=subscription,
                            resource_group=resource_group)
    bodies = [dict(_load(context, request, subscription, resource_group, r.name).body)
              for r in rows]
    return paging.page(request, bodies, context.page_size)


@router.get(DEPLOYMENTS)
def list_in_group(subscription: str, resource_group: str, request: Request,
                  _v: str = Depends(resources_version), _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return _list(subscription, resource_group, request, context)


@router.get(DEPLOYMENTS + "/", include_in_schema=False)
def list_in_group_slash(subscription: str, resource_group: str, request: Request,
                        _v: str = Depends(resources_version), _a: object = Depends(READ),
                        context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """The Resources SDKs list ``.../deployments/`` (with the slash)."""
    return _list(subscription, resource_group, request, context)


def _operation_view(deployment: str, op: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {
        "provisioningOperation": op["provisioningOperation"],
        "provisioningState": op["provisioningState"], "timestamp": op["timestamp"],
        "trackingId": op["trackingId"],
        "targetResource": {"id": op["resourceId"], "resourceType": op["resourceType"],
                           "resourceName": op["resourceName"]}}
    for optional in ("duration", "statusCode", "statusMessage"):
        if optional in op:
            props[optional] = op[optional]
    return {"id": f"{deployment}/operations/{op['operationId']}",
            "operationId": op["operationId"], "properties": props}


@router.get(DEPLOYMENT + "/operations")
@router.get(LEGACY + "/operations", include_in_schema=False)
def list_operations(subscription: str, resource_group: str, name: str, request: Request,
                    _v: str = Depends(resources_version), _a: object = Depends(READ),
                    context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    """One operation per resource the deployment has started, as ARM lists them."""
    row = _load(context, request, subscription, resource_group, name)
    ops = [_operation_view(str(row.body["id"]), o) for o in row.state.get("operations", [])]
    return paging.page(request, ops, context.page_size)


@router.get(DEPLOYMENT + "/operations/{operation_id}")
@router.get(LEGACY + "/operations/{operation_id}", include_in_schema=False)
def get_operation(subscription: str, resource_group: str, name: str, operation_id: str,
                  request: Request, _v: str = Depends(resources_version),
                  _a: object = Depends(READ),
                  context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    row = _load(context, request, subscription, resource_group, name)
    for op in row.state.get("operations", []):
        if op["operationId"].lower() == operation_id.lower():
            return _operation_view(str(row.body["id"]), op)
    raise NotFound(f"Deployment '{name}' has no operation '{operation_id}'.",
                   code="DeploymentOperationNotFound")


@router.get(DEPLOYMENT + "/operationStatuses/{run}")
def operation_status(subscription: str, resource_group: str, name: str, run: str,
                     request: Request, _v: str = Depends(resources_version),
                     _a: object = Depends(READ),
                     context: ApiContext = Depends(request_context)) -> Response:
    """The PUT's status: Accepted/Running, then Succeeded, Failed (with the error) or
    Canceled. With ``monitor=true`` (the ``Location`` URL): 202 while running, then the
    deployment (200) or its error (409)."""
    row = _load(context, request, subscription, resource_group, name)
    if row.state.get("run") != run:
        raise NotFound(f"Deployment '{name}' has no operation '{run}' (it was deployed "
                       "again since).", code="NotFound")
    props = row.body.get("properties", {})
    state = str(props.get("provisioningState"))
    terminal = state in runs.TERMINAL
    headers = {} if terminal else {"Retry-After": "1"}
    if request.query_params.get("monitor") == "true":
        if not terminal:
            return Response(status_code=202, headers=headers)
        if state == runs.SUCCEEDED:
            return JSONResponse(dict(row.body))
        return JSONResponse({"error": props.get("error") or {"code": state, "message": state}},
                            status_code=409)
    out: dict[str, Any] = {"status": state}
    if "error" in props:
        out["error"] = props["error"]
    return JSONResponse(out, headers=headers)


@router.post(DEPLOYMENT + "/validate")
def validate(subscription: str, resource_group: str, name: str, body: DeploymentRequest,
             request: Request, _v: str = Depends(resources_version),
             _a: object = Depends(WRITE),
             context: ApiContext = Depends(request_context)) -> JSONResponse:
    """What PUT would check, with nothing stored: 200 with the validated resources, or the
    error PUT would answer (400 ``InvalidTemplate``/``InvalidTemplateDeployment``)."""
    plan = _checked(subscription, resource_group, name, body, request, context)
    view = _view(subscription, resource_group, name, body, plan, runs.SUCCEEDED, context)
    view["properties"]["validatedResources"] = [{"id": r.id} for r in plan.resources]
    return JSONResponse(view)


@router.post(DEPLOYMENT + "/cancel", status_code=204)
def cancel(subscription: str, resource_group: str, name: str, request: Request,
           _v: str = Depends(resources_version), _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> Response:
    """Stop starting resources; those in flight finish; the deployment ends Canceled."""
    row = _load(context, request, subscription, resource_group, name)
    if row.body.get("properties", {}).get("provisioningState") in runs.TERMINAL or \
            not runs.runner_of(request.app, context).cancel(row.id):
        raise OperationNotAllowed(
            f"The deployment '{name}' is not running, so it cannot be canceled.",
            code="DeploymentCannotBeCancelled")
    return Response(status_code=204)
