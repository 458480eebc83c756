"""Bearer tokens: readers may GET, contributors may also write and run actions.

Two kinds are accepted: the server's opaque tokens (``scaleset token create``,
``security/tokens.py``) and access tokens its authority signed for a service
principal (``az login --service-principal``, azure-identity; JWTs,
``security/authority.py``). A JWT is checked against the URL the client called
(its audience), at the request's clock, and its principal is looked up on
every request, so deleting the principal locks its tokens out at once.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from scaleset.api.context import ApiContext, get_context
from scaleset.errors import Forbidden, Unauthenticated
from scaleset.security import authority
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
        found = _verify(request, context, token.strip())
        if found is None:
            raise Unauthenticated(
                "Authentication failed: the bearer token is not known to this server, was "
                "revoked or has expired (an access token also needs this server as its "
                "audience and a service principal that still exists).",
                code="InvalidAuthenticationToken")
        if not found.allows(role):
            raise Forbidden(
                f"The token has role '{found.value}', which may not perform "
                f"{request.method} {request.url.path}; this needs a '{role.value}' token.")
        return found

    return check


def _verify(request: Request, context: ApiContext, token: str) -> Role | None:
    """The role the token carries here and now, or None."""
    now = context.clock.now()
    if authority.looks_like_jwt(token):
        caller = authority.verify_access_token(
            context.store, token, resource_manager=str(request.base_url), now=now)
        return caller.role if caller is not None else None
    return verify_token(context.store, token, now=now)


READ = require(Role.READER)
WRITE = require(Role.CONTRIBUTOR)
