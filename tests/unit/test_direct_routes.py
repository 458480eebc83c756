"""A direct route's handler passes what FastAPI's solver would (``api/direct.py``).

The handler stands in for the solver only while the endpoint's parameters cannot fail
validation; these tests pin each direct endpoint's signature, so a parameter added to it
fails here instead of being silently left out by its handler.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.api.direct import direct_handler
from scaleset.api.routes import scalesets
from scaleset.api.routes.common import SCALE_SET
from scaleset.clock import EPOCH, VirtualClock
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store


def _params(dependant: Dependant) -> dict[str, list[tuple[str, Any]]]:
    return {kind: [(p.alias, p.field_info.annotation) for p in getattr(dependant, kind)]
            for kind in ("path_params", "query_params", "header_params", "cookie_params",
                         "body_params")}


def _direct_routes() -> list[APIRoute]:
    return [r for r in scalesets.router.routes
            if isinstance(r, APIRoute) and direct_handler(r.endpoint) is not None]


def test_the_scale_set_get_is_its_routers_one_direct_route_and_its_signature_is_pinned() -> None:
    routes = _direct_routes()
    assert [(r.path, r.methods) for r in routes] == [(SCALE_SET, {"GET"})]
    dependant = routes[0].dependant
    assert _params(dependant) == {
        "path_params": [("subscription", str), ("resource_group", str), ("name", str)],
        "query_params": [], "header_params": [], "cookie_params": [], "body_params": []}
    assert [d.call for d in dependant.dependencies] == [scalesets._versioned_reader]
    reader = dependant.dependencies[0]
    assert _params(reader) == {
        "path_params": [], "query_params": [("api-version", str | None)],
        "header_params": [], "cookie_params": [], "body_params": []}
    assert reader.request_param_name == "request" and not reader.dependencies
    assert inspect.iscoroutinefunction(scalesets._versioned_reader)  # no yield, no thread
    assert routes[0].dependant.call is scalesets.get


def test_the_openapi_operation_still_comes_from_the_signature() -> None:
    engine = make_engine("sqlite://")
    migrate(engine)
    app = create_app(ApiContext(store=Store(engine), clock=VirtualClock(EPOCH)))
    operation = app.openapi()["paths"][SCALE_SET]["get"]
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("subscription", "path"), ("resource_group", "path"), ("name", "path"),
        ("api-version", "query")]
    assert "200" in operation["responses"]
