"""A signed-in browser: the session cookie, its CSRF value, and the headers of every page.

The cookie holds the API token the user signed in with (``HttpOnly``, so no script
reads it; ``SameSite=Strict``, so no other site's page sends it; ``Secure`` when served
over TLS). Nothing is stored server-side: signing out clears the cookie, and revoking the
token ends every session that carries it at the next request.

A GET with the cookie is a read like any other. A write (POST, PUT, PATCH, DELETE) with
the cookie also needs ``X-Scaleset-Csrf`` equal to ``csrf_token(store, token)``: a keyed
digest of the token (the server's token key, never stored), which only a page of this
server knows (it is rendered into the page), so a cross-site form or script cannot act
even where a browser would send the cookie.

Rules live here only; ``api/auth.py`` applies them to the API, ``ui/pages.py`` to the
sign-in form.
"""

from __future__ import annotations

import hmac
from typing import Final

from scaleset.security import tokens
from scaleset.store.repository import Store

COOKIE: Final = "scaleset_session"
CSRF_HEADER: Final = "X-Scaleset-Csrf"
CSRF_FIELD: Final = "csrf"
"""The sign-out form's hidden field carrying the same value as the header."""
MAX_TOKEN_CHARS: Final = 3000
"""A token longer than this cannot be a cookie next to its attributes (browsers keep 4 KiB)."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_PURPOSE: Final = "scaleset-ui-csrf\x00"
"""Keeps the CSRF digest apart from the token's own digest (its key in the tokens table)."""

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
"""No inline script or style and nothing from another origin: the page can only ask this
server for anything."""

PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def csrf_token(store: Store, token: str) -> str:
    """The CSRF value bound to ``token`` on this server (hex; the same for every session of
    the token, different on a server with another token key)."""
    return tokens.token_digest(store, _PURPOSE + token)


def csrf_matches(store: Store, token: str, sent: str | None) -> bool:
    """Whether ``sent`` (the header or form field) is the CSRF value of ``token``."""
    if not sent or len(sent) > 128:
        return False
    return hmac.compare_digest(sent.encode("ascii", "replace"),
                               csrf_token(store, token).encode("ascii"))


def cookie_attributes(*, secure: bool) -> dict[str, object]:
    """``Response.set_cookie`` keywords for the session cookie: a browser-session cookie
    (no expiry of its own: the token's expiry and revocation still apply)."""
    return {"key": COOKIE, "path": "/", "httponly": True, "samesite": "strict",
            "secure": secure}


def token_id(token: str) -> str | None:
    """The public id of one of the server's own tokens (``sst_<id>_…``), to show who is
    signed in without showing the secret; None for an access token (a JWT).

    >>> token_id("sst_0a1b2c3d_secret"), token_id("eyJ0eXAi.x.y")
    ('0a1b2c3d', None)
    """
    parts = token.split("_", 2)
    if len(parts) == 3 and parts[0] == tokens.PREFIX and len(parts[1]) == 8:
        return parts[1]
    return None
