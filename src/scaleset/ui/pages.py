"""The dashboard's routes: sign-in and sign-out, the pages, their static files.

Pages are Jinja2 templates rendered with who is signed in (role, token id, the CSRF
value); their JavaScript (``static/*.js``) reads everything else from the ARM API with
the session cookie. Every response carries ``sessions.PAGE_HEADERS`` (a CSP allowing
nothing but this server, no inline script). A page asked for without a valid session
redirects to the sign-in page, which comes back to it afterwards.

The router is built by ``router(verify=..., csrf=...)`` so that this package needs
nothing from the API layer: the app hands in how a token is checked and how its CSRF
value is derived (``api/auth.py``).
"""

from __future__ import annotations

import hmac
import re
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from scaleset import __version__
from scaleset.security.tokens import Role
from scaleset.ui import sessions

HERE: Final = Path(__file__).resolve().parent
STATIC: Final = HERE / "static"
MAX_FORM_BYTES: Final = 8192
MAX_NAME_CHARS: Final = 128
"""Longer than any ARM name (a resource group has at most 90 characters)."""
_STATIC_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(css|js|svg)$")
_MEDIA_TYPES: Final = {"css": "text/css; charset=utf-8",
                       "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"}
_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

Verify = Callable[[Request, str], Role | None]
"""The role a token carries here and now, or None (unknown, revoked, expired)."""
Csrf = Callable[[Request, str], str]
"""The CSRF value bound to a token (``sessions.csrf_token`` over the app's store)."""


@dataclass(frozen=True)
class Session:
    """Who is signed in: what a page may show about it (never the token)."""

    role: Role
    csrf: str
    token_id: str | None

    @property
    def can_act(self) -> bool:
        """Contributors start, cancel and approve runs; readers only watch."""
        return self.role.allows(Role.CONTRIBUTOR)


class _SecuredRoute(APIRoute):
    """A route whose every response carries the dashboard's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(sessions.PAGE_HEADERS)
            return response

        return secured


def router(*, verify: Verify, csrf: Csrf) -> APIRouter:
    """The ``/ui/`` routes, checking tokens with ``verify`` and binding CSRF values with
    ``csrf``."""
    routes = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False,
                       route_class=_SecuredRoute)

    def session_of(request: Request) -> Session | None:
        token = request.cookies.get(sessions.COOKIE)
        if not token or len(token) > sessions.MAX_TOKEN_CHARS:
            return None
        role = verify(request, token)
        if role is None:
            return None
        return Session(role=role, csrf=csrf(request, token), token_id=sessions.token_id(token))

    def page(request: Request, template: str, *, title: str, nav: str,
             **values: Any) -> Response:
        session = session_of(request)
        if session is None:
            return _to_sign_in(request)
        return _render(template, title=title, nav=nav, session=session, **values)

    @routes.get("")
    def root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @routes.get("/")
    def scale_sets(request: Request) -> Response:
        """Every scale set with its image, policy and current run."""
        return page(request, "scale_sets.html", title="Scale sets", nav="scale-sets")

    @routes.get("/scale-sets/{subscription}/{resource_group}/{name}")
    def scale_set(subscription: str, resource_group: str, name: str,
                  request: Request) -> Response:
        """One scale set: the live instance grid, the run, its timeline and history."""
        if any(len(part) > MAX_NAME_CHARS or "/" in part
               for part in (subscription, resource_group, name)):
            return _render("message.html", status=404, title="Not found", nav="scale-sets",
                           session=session_of(request),
                           message="No scale set has a name that long.")
        arm_id = (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
                  f"Microsoft.Compute/virtualMachineScaleSets/{name}")
        return page(request, "scale_set.html", title=name, nav="scale-sets", arm_id=arm_id,
                    name=name, resource_group=resource_group, subscription=subscription)

    @routes.get("/images")
    def image_catalog(request: Request) -> Response:
        """Platform image versions and gallery images with their replication."""
        return page(request, "images.html", title="Images", nav="images")

    @routes.get("/sign-in")
    def sign_in_form(request: Request, next: str | None = None) -> Response:
        return _render("sign_in.html", title="Sign in", nav="", session=None,
                       next=_safe_next(next), error=None)

    @routes.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        """Check the token; on success set the session cookie and go where the user was."""
        if not _same_origin(request):
            return _render("message.html", status=403, title="Refused", nav="", session=None,
                           message="A sign-in must come from this server's own page.")
        form = await _form(request)
        target = _safe_next(form.get("next"))
        token = (form.get("token") or "").strip()

        def again(status: int, error: str) -> Response:
            return _render("sign_in.html", status=status, title="Sign in", nav="",
                           session=None, next=target, error=error)

        if form.get("\0too-large") is not None:
            return again(413, f"The form is larger than {MAX_FORM_BYTES} bytes.")
        if not token:
            return again(400, "Enter a token.")
        if len(token) > sessions.MAX_TOKEN_CHARS or any(
                c.isspace() or not c.isprintable() for c in token):
            return again(400, f"A token is at most {sessions.MAX_TOKEN_CHARS} printable "
                              "characters without spaces; check what was pasted.")
        role = await run_in_threadpool(verify, request, token)
        if role is None:
            return again(401, "That token is not known to this server, was revoked, or has "
                              "expired.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(value=token, **sessions.cookie_attributes(  # type: ignore[arg-type]
            secure=request.url.scheme == "https"))
        return response

    @routes.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        """Clear the session cookie (the token itself stays valid: revoke it to end it)."""
        form = await _form(request)
        token = request.cookies.get(sessions.COOKIE) or ""
        if token and (not _same_origin(request)
                      or not _csrf_ok(form.get(sessions.CSRF_FIELD), csrf(request, token))):
            return _render("message.html", status=403, title="Refused", nav="", session=None,
                           message="A sign-out must come from this server's own page.")
        response = RedirectResponse("/ui/sign-in", status_code=303)
        attributes = sessions.cookie_attributes(secure=request.url.scheme == "https")
        response.delete_cookie(**attributes)  # type: ignore[arg-type]
        return response

    @routes.get("/static/{filename}")
    def static(filename: str) -> Response:
        """The dashboard's CSS, JavaScript and icon: files of this package, nothing else."""
        match = _STATIC_NAME.match(filename)
        path = STATIC / filename
        if match is None or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type=_MEDIA_TYPES[match.group(1)],
                        headers={"Cache-Control": "no-cache"})

    return routes


def _render(template: str, *, status: int = 200, **values: Any) -> Response:
    html = _TEMPLATES.get_template(template).render(asset_version=__version__, **values)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store"})  # a page holds the CSRF value


def _to_sign_in(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/ui/sign-in?" + urllib.parse.urlencode({"next": here}),
                            status_code=303)


def _safe_next(raw: str | None) -> str:
    """Where to go after signing in: a dashboard path of this server, never another site.

    >>> _safe_next("/ui/images"), _safe_next("//evil.example/ui/"), _safe_next("https://x/")
    ('/ui/images', '/ui/', '/ui/')
    """
    if (raw is None or len(raw) > 1024 or not raw.startswith("/ui/") or "//" in raw
            or "\\" in raw or any(not c.isprintable() for c in raw)):
        return "/ui/"
    return raw


def _csrf_ok(sent: str | None, expected: str) -> bool:
    if not sent or len(sent) > 128:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from this server's page: browsers send ``Origin`` on every
    POST; a missing one (a script, curl) is not a cross-site form."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, bounded (first value of each field).
    A body over the bound yields ``{"\\0too-large": ""}``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {"\0too-large": ""}
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                       keep_blank_values=True, max_num_fields=16)
    except ValueError:  # more fields than any of these forms has
        return {}
    return {key: values[0] for key, values in fields.items() if values}
