"""Bearer tokens: readers may GET, contributors may also write and run actions.

Two kinds are accepted: the server's opaque tokens (``scaleset token create``,
``security/tokens.py``) and access tokens its authority signed for a service
principal (``az login --service-principal``, azure-identity; JWTs,
``security/authority.py``). A JWT is checked against the URL the client called
(its audience), at the request's clock, and its principal is looked up on
every request, so deleting the principal locks its tokens out at once.

A browser signed in to the dashboard (``ui/sessions.py``) sends the token in the session
cookie instead of the header: enough for a GET; a write also needs the CSRF header bound
to that token, so a cross-site form cannot act with the user's cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from scaleset.api import access
from scaleset.api.context import ApiContext, get_context
from scaleset.errors import Forbidden, Unauthenticated
from scaleset.security import authority
from scaleset.security.tokens import Role, verify_token
from scaleset.ui import sessions


def require(role: Role) -> Callable[..., Role]:
    """A dependency that admits requests whose token has at least ``role``."""

    def check(request: Request, context: ApiContext = Depends(get_context)) -> Role:
        if not context.auth_required:
            return Role.CONTRIBUTOR
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        cookie = request.cookies.get(sessions.COOKIE) if not header else None
        if cookie:
            token, scheme = cookie, "bearer"
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
        access.note_caller(request, role=found.value)  # for the request's log line
        if cookie and request.method not in sessions.SAFE_METHODS and not sessions.csrf_matches(
                context.store, cookie, request.headers.get(sessions.CSRF_HEADER)):
            raise Forbidden(
                f"{request.method} {request.url.path} came with the dashboard's session cookie "
                f"but without the '{sessions.CSRF_HEADER}' header that session's page sends: "
                "a write from a browser must come from this server's own dashboard (or send "
                "'Authorization: Bearer <token>').", code="InvalidCsrfToken")
        if not found.allows(role):
            raise Forbidden(
                f"The token has role '{found.value}', which may not perform "
                f"{request.method} {request.url.path}; this needs a '{role.value}' token.")
        return found

    return check


def token_role(request: Request, token: str) -> Role | None:
    """The role ``token`` carries on this server now, or None: how the dashboard's sign-in
    checks a token, exactly as a request's header is checked."""
    context = get_context(request)
    if not context.auth_required:
        return Role.CONTRIBUTOR
    return _verify(request, context, token)


def csrf_token(request: Request, token: str) -> str:
    """The CSRF value a dashboard page sends with a write made with ``token``'s cookie."""
    return sessions.csrf_token(get_context(request).store, token)


def _verify(request: Request, context: ApiContext, token: str) -> Role | None:
    """The role the token carries here and now, or None."""
    now = context.clock.now()
    if authority.looks_like_jwt(token):
        caller = authority.verify_access_token(
            context.store, token, resource_manager=str(request.base_url), now=now)
        if caller is not None:
            access.note_caller(request, role=caller.role.value,
                               principal=caller.principal.app_id)
        return caller.role if caller is not None else None
    return verify_token(context.store, token, now=now)


READ = require(Role.READER)
WRITE = require(Role.CONTRIBUTOR)
