"""``create_app(context)``: the ARM-compatible API as one FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from scaleset import __version__
from scaleset.api import envelope
from scaleset.api.context import ApiContext
from scaleset.api.paths import CanonicalPathMiddleware
from scaleset.api.routes import images, instances, operations, scalesets, upgrades


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
    )
    app.state.context = context
    envelope.install(app)
    for module in (scalesets, upgrades, instances, images, operations):
        app.include_router(module.router)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: answers without a token."""
        return {"status": "ok", "version": __version__}

    app.add_middleware(CanonicalPathMiddleware)
    return app
