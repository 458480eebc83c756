"""Routes whose arguments are taken from the request by hand, not by FastAPI's solver.

FastAPI resolves an endpoint's parameters per request (``solve_dependencies``: each path
and query parameter validated through pydantic, each dependency called through its own
resolution); for the most frequent request, a GET of a scale set, that was about a
quarter of the server's CPU for it. ``DirectRoute`` lets such an endpoint name a handler
that takes the same arguments from the request itself. The route is declared as usual, so
its OpenAPI operation (parameters, responses) is what FastAPI derives from the
endpoint's signature, and only the per-request resolution is replaced.

A direct handler must pass what the solver would: it may only stand in for parameters
that cannot fail validation (path strings, an optional query string) and dependencies
without ``yield``; ``tests/unit/test_direct_routes.py`` checks each one's signature.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

DIRECT = "scaleset_direct_handler"
"""The endpoint attribute naming its direct handler."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
F = TypeVar("F", bound=Callable[..., Any])


def resolved_by(handler: Handler) -> Callable[[F], F]:
    """Mark an endpoint as answered by ``handler(request)`` under a ``DirectRoute``."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, DIRECT, handler)
        return endpoint

    return mark


def direct_handler(endpoint: Callable[..., Any]) -> Handler | None:
    """The handler ``resolved_by`` gave ``endpoint``, or None."""
    found = getattr(endpoint, DIRECT, None)
    return found if callable(found) else None


class DirectRoute(APIRoute):
    """An ``APIRoute`` answered by its endpoint's direct handler when it has one."""

    def get_route_handler(self) -> Handler:
        """The endpoint's direct handler, else FastAPI's own (which solves dependencies)."""
        found = direct_handler(self.endpoint)
        return found if found is not None else super().get_route_handler()
