"""``create_app(context)``: the ARM-compatible API as one FastAPI application."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.openapi.utils import get_openapi

from scaleset import __version__
from scaleset.api import access, auth, docs, envelope, metrics, vitals
from scaleset.api.admission import Admission
from scaleset.api.context import ApiContext
from scaleset.api.paths import ArmPathMiddleware
from scaleset.api.routes import (
    authority,
    deployments,
    events,
    galleries,
    images,
    instances,
    loadbalancers,
    metadata,
    networksecuritygroups,
    operations,
    power,
    principals,
    publicips,
    resourcegroups,
    scalesets,
    servicefabric,
    subscriptions,
    tokens,
    upgrades,
    virtualnetworks,
)
from scaleset.ui import pages as dashboard


def create_app(context: ApiContext) -> FastAPI:
    """The API over ``context``'s store; every ARM route needs a bearer token.

    >>> # app = create_app(ApiContext(store=store, clock=SystemClock()))
    """
    app = FastAPI(
        title="scaleset",
        version=__version__,
        description="Virtual machine scale sets with automatic OS image upgrades, on Azure "
                    "Resource Manager's wire format. Every ARM route needs "
                    "'Authorization: Bearer <token>' and an api-version.",
        docs_url=None, redoc_url=None,  # docs.install serves them without a CDN
    )
    app.state.context = context
    envelope.install(app)
    docs.install(app)
    # Routes are matched in order: the ARM routes first (a GET of a scale set, the most
    # frequent request, passes no dashboard route), then the dashboard (/ui/; it checks
    # tokens as the API does), which must come before authority's {tenant} paths.
    for module in (scalesets, upgrades, events, instances, images, operations, loadbalancers,
                   galleries, servicefabric, tokens, resourcegroups,
                   virtualnetworks, publicips, networksecuritygroups,
                   power, deployments, subscriptions, principals, metadata):
        app.include_router(module.router)
    app.include_router(dashboard.router(verify=auth.token_role, csrf=auth.csrf_token))
    app.include_router(authority.router)  # last: its paths start with a {tenant} variable

    watched = _storage_paths(context)
    seen = vitals.vitals_of(app)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> JSONResponse:
        """Liveness and storage, without a token: 200 ``ok``, or 200 ``degraded`` while
        writes fail or are about to for lack of space (reads still work); 503
        ``unavailable`` only while reads fail. Async, so a busy thread pool never holds it."""
        storage = vitals.storage_report(watched, seen)
        failing = vitals.reads_failing(seen)
        if failing is not None:
            return JSONResponse({"status": "unavailable", "version": __version__,
                                 "reads": failing, "storage": storage}, status_code=503)
        return JSONResponse({"status": "ok" if storage["ok"] else "degraded",
                             "version": __version__, "storage": storage})

    metrics.install(app, context)
    # Innermost: canonical keyword spellings, then the path's names checked, then the
    # route that answered noted (it sees the scope the router writes the route into).
    app.add_middleware(ArmPathMiddleware)
    # Outside the routing: a request shed or too large costs no routing, no parsing.
    app.add_middleware(Admission, limits=context.settings.limits, vitals=seen)
    # Around everything: a request Admission refuses is logged and counted too.
    app.add_middleware(access.RequestTelemetry, metrics=context.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _storage_paths(context: ApiContext) -> tuple[Path, ...]:
    """Where the server writes: the data directory and the SQLite database's directory."""
    paths: list[Path] = []
    if context.artifacts is not None:
        paths.append(context.artifacts.data_dir)
    database = context.store.engine.url.database
    if context.store.engine.url.get_backend_name() == "sqlite" and database not in (
            None, "", ":memory:"):
        paths.append(Path(str(database)).resolve().parent)
    return tuple(dict.fromkeys(paths))


_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "target": {"type": "string"},
                   "details": {"type": "array", "items": {"type": "object"}}}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected: invalid requests are 400s in ARM's envelope, not 422s."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)
    envelope = {"description": "An error in ARM's envelope (401, 403, 404, 409, 412 likewise)",
                "content": {"application/json": {"schema": _ERROR}}}
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if operation.get("operationId", "").startswith("healthz"):
                continue
            responses.setdefault("400", envelope)
            responses.setdefault("default", envelope)
    for unused in ("HTTPValidationError", "ValidationError"):
        spec.get("components", {}).get("schemas", {}).pop(unused, None)
    app.openapi_schema = spec
    return spec
