"""Bearer tokens: readers may GET, contributors may also write and run actions."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from scaleset.api.context import ApiContext, get_context
from scaleset.errors import Forbidden, Unauthenticated
from scaleset.security.tokens import Role, verify_token


def require(role: Role) -> Callable[..., Role]:
    """A dependency that admits requests whose token has at least ``role``."""

    def check(request: Request, context: ApiContext = Depends(get_context)) -> Role:
        if not context.auth_required:
            return Role.CONTRIBUTOR
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "Authentication failed: the request has no 'Authorization: Bearer <token>' "
                "header. Create a token with 'scaleset token create' and send it.")
        found = verify_token(context.store, token.strip(), now=context.clock.now())
        if found is None:
            raise Unauthenticated(
                "Authentication failed: the bearer token is not known to this server, was "
                "revoked or has expired.",
                code="InvalidAuthenticationToken")
        if not found.allows(role):
            raise Forbidden(
                f"The token has role '{found.value}', which may not perform "
                f"{request.method} {request.url.path}; this needs a '{role.value}' token.")
        return found

    return check


READ = require(Role.READER)
WRITE = require(Role.CONTRIBUTOR)
