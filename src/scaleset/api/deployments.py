"""Running template deployments (``Microsoft.Resources/deployments``) through the API itself.

A deployment is planned by ``scaleset.templates`` (pure), then each resource is
PUT, in dependency order, by an in-process ASGI request to this very app with
the deploying caller's ``Authorization`` header: validation, defaults, LROs and
permissions are exactly those of a direct call, and a resource type is served
exactly when a route answers its PUT. Independent resources go in parallel; a
resource whose PUT starts an LRO is polled until it ends before its dependants
start. Each resource's operation (start, status code, outcome) is recorded in
the deployment's row of the generic ``resources`` table; ``outputs`` are
evaluated last, with ``reference()`` reading the deployed resources by GET.

One runner per app, one thread (with its own event loop) per running
deployment. A deployment never runs twice at once: the runner keeps the set
of deployments it is running and refuses a second PUT (409
``DeploymentActive``); across processes a running deployment's row carries
the runner's id and a heartbeat.

**A restart fails the deployment** instead of resuming it: resuming would
need the caller's authority, and the server keeps no bearer token (only
hashes). A deployment whose runner is gone (this process's runner is not
running it, or another process's heartbeat is older than ``stale_after``) is
marked Failed with a ``ServerRestarted`` detail naming the resources that had
not finished; PUTting the same deployment again finishes the work, since
every resource PUT is idempotent.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx
from fastapi import FastAPI
from starlette.routing import Match

from scaleset.api import admission, versions
from scaleset.api.context import ApiContext
from scaleset.api.paths import canonical_path
from scaleset.errors import ScalesetError
from scaleset.store.repository import ResourceRow
from scaleset.templates import plan as templates
from scaleset.templates.errors import TemplateError

TYPE: Final = "Microsoft.Resources/deployments"
ACCEPTED: Final = "Accepted"
RUNNING: Final = "Running"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELED: Final = "Canceled"
TERMINAL: Final = frozenset({SUCCEEDED, FAILED, CANCELED})
RESOURCE_TIMEOUT_S: Final = 3600.0
"""A resource whose own LRO has not ended after an hour fails the deployment."""
KEPT_PER_GROUP: Final = 800
"""ARM keeps at most 800 deployments per resource group, deleting the oldest finished ones."""
DEPLOYMENT_FAILED: Final = ("At least one resource deployment operation failed. Please list "
                            "deployment operations for details. Please see "
                            "https://aka.ms/arm-deployment-operations for usage details.")

# What providers() answers and reference() uses when no api-version is given: the
# calendars this server accepts, newest first, for the types it serves.
_CALENDARS: Final[Mapping[str, tuple[str, ...]]] = {
    "microsoft.compute/virtualmachinescalesets": versions.COMPUTE,
    "microsoft.compute/galleries": versions.GALLERY,
    "microsoft.compute/galleries/images": versions.GALLERY,
    "microsoft.compute/galleries/images/versions": versions.GALLERY,
    "microsoft.network/loadbalancers": versions.NETWORK,
    "microsoft.network/loadbalancers/inboundnatrules": versions.NETWORK,
    "microsoft.network/virtualnetworks": versions.NETWORK,
    "microsoft.network/virtualnetworks/subnets": versions.NETWORK,
    "microsoft.network/publicipaddresses": versions.NETWORK,
    "microsoft.network/networksecuritygroups": versions.NETWORK,
    "microsoft.servicefabric/clusters": versions.SERVICE_FABRIC,
    "microsoft.resources/deployments": versions.RESOURCES,
}
API_VERSIONS: Final = {k: tuple(reversed(v)) for k, v in _CALENDARS.items()}


class InvalidTemplateDeployment(ScalesetError):
    """A template that parses but cannot be deployed here (ARM's code for failed preflight)."""

    code = "InvalidTemplateDeployment"
    status = 400


def deployment_id(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{TYPE}/{name}")


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def duration(seconds: float) -> str:
    """An ISO 8601 duration as ARM writes it (``PT1M2.5S``)."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    text = f"{rest:.7f}".rstrip("0").rstrip(".")
    return f"PT{int(minutes)}M{text}S" if minutes else f"PT{text}S"


def served(app: FastAPI, resource_id: str) -> bool:
    """Whether a route of ``app`` answers a PUT of this resource (as the middleware
    canonicalises its path first)."""
    scope = {"type": "http", "method": "PUT", "path": canonical_path(resource_id),
             "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def unserved(app: FastAPI, plan: templates.Plan, name: str) -> None:
    """Refuse (400 ``InvalidTemplateDeployment``) a plan with a resource type nobody serves,
    naming each such type, before anything is written."""
    missing: dict[str, templates.Resource] = {}
    for r in plan.resources:
        if not served(app, r.id):
            missing.setdefault(r.type.lower(), r)
    if not missing:
        return
    details = [{"code": "NoRegisteredProviderFound", "target": r.where,
                "message": f"No registered resource provider found for location "
                           f"'{plan.scope.facts.resource_group_location or ''}' and API version "
                           f"'{r.api_version}' for type '{r.type}'. This server serves "
                           "scale sets, load balancers, networks and galleries; see "
                           "docs/architecture.md for the types it serves."}
               for r in missing.values()]
    raise InvalidTemplateDeployment(
        f"The template deployment '{name}' is not valid according to the validation procedure: "
        f"the resource type(s) {', '.join(repr(r.type) for r in missing.values())} are not "
        "served here. See inner errors for details.",
        target="properties.template.resources", details=details)


@dataclass
class _Job:
    key: str
    id: str
    run: str
    plan: templates.Plan
    authorization: str | None
    base_url: str
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)


class DeploymentRunner:
    """Runs deployments of one app, each on its own thread; see the module's docstring."""

    def __init__(self, app: FastAPI, context: ApiContext, *, stale_after: float = 30.0,
                 heartbeat: float = 5.0) -> None:
        self.app = app
        self.context = context
        self.instance = uuid.uuid4().hex
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job | None] = {}
        """Running deployments by key; None while claimed and not yet started."""

    # -- who runs what ----------------------------------------------------------------------
    def is_running(self, key: str) -> bool:
        with self._lock:
            return key.lower() in self._jobs

    def claim(self, key: str) -> bool:
        """Reserve ``key`` for a new run; False when it is already running here."""
        with self._lock:
            if key.lower() in self._jobs:
                return False
            self._jobs[key.lower()] = None
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key.lower(), None)

    def cancel(self, key: str) -> bool:
        with self._lock:
            job = self._jobs.get(key.lower())
        if job is None:
            return False
        job.cancel.set()
        return True

    def orphaned(self, row: ResourceRow) -> bool:
        """Whether a row that says Accepted/Running has no runner any more."""
        state = row.body.get("properties", {}).get("provisioningState")
        if state in TERMINAL:
            return False
        if row.state.get("runner") == self.instance:
            return not self.is_running(row.id)
        return bool(time.time() - float(row.state.get("heartbeat", 0)) > self.stale_after)

    def start(self, key: str, deployment: str, run: str, plan: templates.Plan,
              authorization: str | None, base_url: str) -> None:
        """Run a claimed deployment on a new thread."""
        job = _Job(key.lower(), deployment, run, plan, authorization, base_url)
        with self._lock:
            self._jobs[key.lower()] = job
        threading.Thread(target=self._thread, args=(job,), daemon=True,
                         name=f"deployment {deployment.rsplit('/', 1)[-1]}").start()

    def _thread(self, job: _Job) -> None:
        try:
            asyncio.run(self._run(job))
        except Exception as exc:  # the row must never stay Running because of a bug here
            self._finish(job, FAILED, error={"code": "InternalServerError",
                                             "message": f"the deployment runner failed: {exc}"})
        finally:
            self.release(job.key)

    # -- the row -----------------------------------------------------------------------------
    def update(self, key: str, change: Callable[[dict[str, Any], dict[str, Any]], None], *,
               run: str | None = None) -> None:
        """Read-modify-write the deployment's row in one transaction (body, state).

        With ``run``, only while the row is still that run's and not ended: a run that
        was declared dead (and maybe deployed again) by another process writes nothing.
        """
        with self.context.store.transaction() as tx:
            row = tx.get_resource(key, for_update=True)
            if row is None:
                return
            if run is not None and (row.state.get("run") != run or row.body.get(
                    "properties", {}).get("provisioningState") in TERMINAL):
                return
            body = _copy(row.body)
            state = _copy(row.state)
            change(body, state)
            state["heartbeat"] = time.time()
            tx.put_resource(row.replace(body=body, state=state,
                                        updated_at=self.context.clock.now()))

    def _finish(self, job: _Job, status: str, *, error: dict[str, Any] | None = None,
                outputs: dict[str, Any] | None = None) -> None:
        elapsed = time.monotonic() - job.started

        def change(body: dict[str, Any], state: dict[str, Any]) -> None:
            props = body.setdefault("properties", {})
            props["provisioningState"] = status
            props["timestamp"] = iso(self.context.clock.now())
            props["duration"] = duration(elapsed)
            if error is not None:
                props["error"] = error
            if outputs is not None:
                props["outputs"] = outputs
                props["outputResources"] = [{"id": r.id} for r in job.plan.resources]
        self.update(job.key, change, run=job.run)

    def _operation(self, job: _Job, op: dict[str, Any]) -> None:
        def change(_: dict[str, Any], state: dict[str, Any]) -> None:
            ops = [o for o in state.get("operations", []) if o["operationId"] != op["operationId"]]
            state["operations"] = [*ops, op]
        self.update(job.key, change, run=job.run)

    # -- the run -----------------------------------------------------------------------------
    async def _run(self, job: _Job) -> None:
        headers = {"Authorization": job.authorization} if job.authorization else {}
        # Marked internal: the work of an admitted request is never shed (429).
        transport = httpx.ASGITransport(app=admission.internal(self.app))
        async with httpx.AsyncClient(transport=transport, base_url=job.base_url,
                                     headers=headers, timeout=None) as client:
            self.update(job.key, lambda body, _: body["properties"].update(
                provisioningState=RUNNING), run=job.run)
            loop = asyncio.get_running_loop()
            scope = job.plan.run_scope(self._resolver(client, loop))
            beat = asyncio.create_task(self._beat(job))
            try:
                errors = await self._deploy_all(client, job, scope)
            finally:
                beat.cancel()
            if job.cancel.is_set() and not errors:
                self._finish(job, CANCELED, error={"code": "DeploymentCanceled",
                                                   "message": "The deployment was canceled."})
                return
            if errors:
                self._finish(job, FAILED, error={"code": "DeploymentFailed",
                                                 "message": DEPLOYMENT_FAILED,
                                                 "details": errors})
                return
            try:
                outputs = await asyncio.to_thread(templates.outputs, job.plan.outputs, scope)
            except ScalesetError as exc:
                self._finish(job, FAILED, error={
                    "code": "DeploymentOutputEvaluationFailed",
                    "message": f"Unable to evaluate template outputs: {exc.message}",
                    "details": [{"code": exc.code, "message": exc.message,
                                 **({"target": exc.target} if exc.target else {})}]})
                return
            self._finish(job, SUCCEEDED, outputs=outputs)

    async def _beat(self, job: _Job) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self.update(job.key, lambda _, __: None, run=job.run)

    async def _deploy_all(self, client: httpx.AsyncClient, job: _Job, scope: Any
                          ) -> list[dict[str, Any]]:
        pending = list(job.plan.resources)
        done: set[str] = set()
        running: dict[asyncio.Task[dict[str, Any] | None], templates.Resource] = {}
        errors: list[dict[str, Any]] = []
        while pending or running:
            if not errors and not job.cancel.is_set():
                for r in [r for r in pending if r.depends_on <= done]:
                    pending.remove(r)
                    running[asyncio.create_task(self._deploy(client, job, r, scope))] = r
            if not running:
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                resource = running.pop(task)
                error = task.result()
                if error is None:
                    done.add(resource.key)
                else:
                    errors.append(error)
        return errors

    async def _deploy(self, client: httpx.AsyncClient, job: _Job, resource: templates.Resource,
                      scope: Any) -> dict[str, Any] | None:
        """PUT one resource and wait for its LRO; its error (ARM's shape) or None."""
        op_id = uuid.uuid4().hex[:16].upper()
        started = time.monotonic()
        op: dict[str, Any] = {
            "operationId": op_id, "provisioningOperation": "Create",
            "provisioningState": RUNNING, "timestamp": iso(self.context.clock.now()),
            "trackingId": str(uuid.uuid4()), "resourceId": resource.id,
            "resourceType": resource.type, "resourceName": resource.name}
        self._operation(job, op)
        status, error = await self._apply(client, resource, scope)
        op.update(provisioningState=SUCCEEDED if error is None else FAILED,
                  timestamp=iso(self.context.clock.now()),
                  duration=duration(time.monotonic() - started), statusCode=status)
        if error is not None:
            op["statusMessage"] = {"status": FAILED, "error": error}
        self._operation(job, op)
        if error is None:
            return None
        return {"code": error.get("code", "ResourceDeploymentFailure"),
                "message": error.get("message", ""), "target": resource.id,
                **({"details": error["details"]} if error.get("details") else {})}

    async def _apply(self, client: httpx.AsyncClient, resource: templates.Resource, scope: Any
                     ) -> tuple[str, dict[str, Any] | None]:
        try:
            body = await asyncio.to_thread(templates.body, resource, scope)
        except ScalesetError as exc:
            return "BadRequest", {"code": exc.code, "message": exc.message}
        r = await client.put(f"{resource.id}?api-version={resource.api_version}", json=body)
        status = _status_name(r.status_code)
        if r.status_code >= 400:
            return status, _error_of(r)
        poll = r.headers.get("azure-asyncoperation") or (
            r.headers.get("location") if r.status_code == 202 else None)
        if poll is None:
            return status, None
        deadline = time.monotonic() + RESOURCE_TIMEOUT_S
        interval = 0.1
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            interval = min(1.0, interval * 2)
            p = await client.get(poll)
            if p.status_code == 202:
                continue
            if p.status_code >= 400:
                return status, _error_of(p)
            answer = p.json() if p.content else {}
            state = str(answer.get("status", SUCCEEDED if p.status_code == 200 and
                                   "status" not in answer else "InProgress"))
            if state.lower() == "succeeded":
                return status, None
            if state.lower() in ("failed", "canceled"):
                return status, answer.get("error") or {
                    "code": "ResourceDeploymentFailure",
                    "message": f"The resource operation completed with terminal provisioning "
                               f"state '{state}'."}
        return status, {"code": "ResourceDeploymentFailure",
                        "message": f"The resource's operation did not end within "
                                   f"{int(RESOURCE_TIMEOUT_S)} s."}

    def _resolver(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop
                  ) -> Callable[[str, str | None], Mapping[str, Any]]:
        """``reference()``'s lookup: a GET through the app, from the evaluator's thread."""
        def resolve(resource_id: str, api_version: str | None) -> Mapping[str, Any]:
            if api_version is None:
                api_version = _newest(resource_id)
            future = asyncio.run_coroutine_threadsafe(
                client.get(f"{resource_id}?api-version={api_version}"), loop)
            r = future.result(timeout=120)
            if r.status_code != 200:
                error = _error_of(r)
                raise TemplateError(
                    f"The resource '{resource_id}' referenced by reference() could not be "
                    f"read: {error.get('code')}: {error.get('message')}",
                    code="ResourceNotFound" if r.status_code == 404 else "InvalidTemplate")
            found = r.json()
            assert isinstance(found, dict)
            return found
        return resolve


def _newest(resource_id: str) -> str:
    parts = resource_id.split("/providers/", 1)[-1].split("/")
    rtype = "/".join([parts[0], *parts[1::2]]).lower()
    calendar = API_VERSIONS.get(rtype)
    if not calendar:
        raise TemplateError(f"reference('{resource_id}') needs an api-version: the type "
                            f"'{rtype}' is not served here.")
    return calendar[0]


def _status_name(code: int) -> str:
    return {200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent", 400: "BadRequest",
            401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            412: "PreconditionFailed"}.get(code, str(code))


def _error_of(r: httpx.Response) -> dict[str, Any]:
    try:
        payload = r.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return dict(payload["error"])
    return {"code": _status_name(r.status_code), "message": r.text[:2000]}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_RUNNERS_LOCK = threading.Lock()


def runner_of(app: FastAPI, context: ApiContext) -> DeploymentRunner:
    """The app's runner, made on first use."""
    with _RUNNERS_LOCK:
        runner = getattr(app.state, "deployment_runner", None)
        if runner is None:
            runner = DeploymentRunner(app, context)
            app.state.deployment_runner = runner
        assert isinstance(runner, DeploymentRunner)
        return runner
