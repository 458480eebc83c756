"""The authority's HTTP face: what MSAL (in az and azure-identity) asks an Entra ID for.

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and the v1 form
  ``/{tenant}/.well-known/openid-configuration`` (which is also where MSAL looks
  for an AD FS authority, ``/adfs/...``: see ``metadata.py``) — the endpoints.
* ``GET /{tenant}/discovery/v2.0/keys`` (and ``/discovery/keys``) — the JWKS.
* ``GET /common/discovery/instance`` — instance discovery as Entra ID answers it,
  for an MSAL application given this URL as its ``instance_discovery``; an
  authority on another host is ``invalid_instance`` (AADSTS50049). MSAL's
  default asks ``login.microsoftonline.com`` instead, which does not know this
  server: az avoids it through the AD FS form, azure-identity with
  ``disable_instance_discovery=True``.
* ``POST /{tenant}/oauth2/v2.0/token`` (``scope=``) and ``/{tenant}/oauth2/token``
  (``resource=``, or ``scope=`` as MSAL sends to AD FS) — client credentials only.

``{tenant}`` is this server's tenant id, ``organizations``, ``common`` or ``adfs``.
Answers and errors are Entra ID's JSON (``error``, ``error_description``,
``error_codes`` ...), not ARM's envelope, because MSAL parses those. None of
these routes needs a bearer token.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from scaleset.api.context import ApiContext, request_context
from scaleset.security import authority
from scaleset.security.authority import AuthorityError, ServerIdentity

# Not in /openapi.json: these are OAuth endpoints (clients find them through the OpenID
# document), they answer in Entra ID's error shape, not the ARM envelope the document
# promises for every route.
router = APIRouter(tags=["authority"], include_in_schema=False)

MAX_FORM_BYTES: Final = 64 * 1024
Tenant = Annotated[str, Path(min_length=1, max_length=128)]
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def base_url(request: Request) -> str:
    """The URL the client called this server by (scheme, host, port), no trailing slash."""
    return str(request.base_url).rstrip("/")


def _error(exc: AuthorityError, now: datetime) -> JSONResponse:
    return JSONResponse(exc.body(now=now), status_code=exc.status, headers=NO_STORE)


def _identity(context: ApiContext, tenant: str) -> ServerIdentity:
    identity = authority.server_identity(context.store, now=context.clock.now())
    if not authority.is_our_tenant(tenant, identity):
        raise AuthorityError(
            "invalid_tenant", 90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
            f"ID: this server's tenant is '{identity.tenant_id}' ('scaleset sp create' "
            "prints it); 'organizations' also works.")
    return identity


def _configuration(base: str, tenant: str, identity: ServerIdentity, *, v2: bool
                   ) -> dict[str, Any]:
    prefix = f"{base}/{tenant}"
    oauth = f"{prefix}/oauth2/v2.0" if v2 else f"{prefix}/oauth2"
    return {
        "issuer": f"{base}/{identity.tenant_id}/v2.0",
        "token_endpoint": f"{oauth}/token",
        "authorization_endpoint": f"{oauth}/authorize",
        "jwks_uri": f"{prefix}/discovery/v2.0/keys" if v2 else f"{prefix}/discovery/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": [authority.ALGORITHM],
        "scopes_supported": [f"{base}/.default"],
        "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "appid",
                             "azp", "roles", "ver"],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": None,
        "cloud_instance_name": urlsplit(base).netloc,
    }


@router.get("/{tenant}/v2.0/.well-known/openid-configuration",
            summary="OpenID Connect discovery (v2.0 endpoints)")
def openid_v2(tenant: Tenant, request: Request,
              context: ApiContext = Depends(request_context)) -> JSONResponse:
    try:
        identity = _identity(context, tenant)
    except AuthorityError as exc:
        return _error(exc, context.clock.now())
    return JSONResponse(_configuration(base_url(request), tenant, identity, v2=True))


@router.get("/{tenant}/.well-known/openid-configuration",
            summary="OpenID Connect discovery (v1 endpoints; the AD FS form at /adfs)")
def openid_v1(tenant: Tenant, request: Request,
              context: ApiContext = Depends(request_context)) -> JSONResponse:
    try:
        identity = _identity(context, tenant)
    except AuthorityError as exc:
        return _error(exc, context.clock.now())
    return JSONResponse(_configuration(base_url(request), tenant, identity, v2=False))


@router.get("/{tenant}/discovery/v2.0/keys", summary="The token signing keys (JWKS)")
@router.get("/{tenant}/discovery/keys", summary="The token signing keys (JWKS, v1 path)")
def keys(tenant: Tenant, context: ApiContext = Depends(request_context)) -> JSONResponse:
    try:
        identity = _identity(context, tenant)
    except AuthorityError as exc:
        return _error(exc, context.clock.now())
    return JSONResponse(authority.jwks([identity]))


@router.get("/{tenant}/discovery/instance", summary="Instance discovery, as Entra ID answers it")
def instance_discovery(
    tenant: Tenant, request: Request,
    authorization_endpoint: Annotated[str | None, Query(max_length=2048)] = None,
    context: ApiContext = Depends(request_context),
) -> JSONResponse:
    now = context.clock.now()
    base = base_url(request)
    ours = urlsplit(base).netloc.lower()
    asked = urlsplit(authorization_endpoint or "")
    segments = [s for s in asked.path.split("/") if s]
    try:
        _identity(context, tenant)
        if asked.scheme != "https" or asked.netloc.lower() != ours or not segments:
            raise AuthorityError(
                "invalid_instance", 50049,
                f"Unknown or invalid instance. This authority is {base}; the "
                "authorization_endpoint must be https://<this host>/<tenant>/oauth2/v2.0/"
                "authorize.")
        _identity(context, segments[0])
    except AuthorityError as exc:
        return _error(exc, now)
    host = urlsplit(base).netloc
    return JSONResponse({
        "tenant_discovery_endpoint":
            f"{base}/{segments[0]}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    })


@router.post("/{tenant}/oauth2/v2.0/token", summary="Token (client credentials, scope=)")
async def token_v2(tenant: Tenant, request: Request,
                   context: ApiContext = Depends(request_context)) -> JSONResponse:
    return await _token(tenant, request, context, v1=False)


@router.post("/{tenant}/oauth2/token", summary="Token (client credentials, resource= or scope=)")
async def token_v1(tenant: Tenant, request: Request,
                   context: ApiContext = Depends(request_context)) -> JSONResponse:
    return await _token(tenant, request, context, v1=True)


async def _token(tenant: str, request: Request, context: ApiContext, *, v1: bool
                 ) -> JSONResponse:
    now = context.clock.now()
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise AuthorityError("invalid_request", 900144,
                                 "The request body must contain the following parameter: "
                                 "'grant_type'.")
        if grant_type != "client_credentials":
            raise AuthorityError(
                "unsupported_grant_type", 70003,
                f"The app requested an unsupported grant type '{grant_type[:64]}'. This "
                "authority signs in service principals only: grant_type=client_credentials.")
        client_id, client_secret = _client(request, form)
        base = base_url(request)
        grant = authority.issue_token(
            context.store, tenant=tenant, client_id=client_id, client_secret=client_secret,
            scope=form.get("scope"), resource=form.get("resource"), resource_manager=base,
            issuer_base=base, now=now)
    except AuthorityError as exc:
        return _error(exc, now)
    lifetime = int((grant.expires_on - now).total_seconds())
    answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime,
                              "ext_expires_in": lifetime, "access_token": grant.access_token}
    if v1 and "resource" in form:  # the v1 answer's strings, as Entra ID's v1 endpoint sends
        answer.update(expires_in=str(lifetime), ext_expires_in=str(lifetime),
                      expires_on=str(int(grant.expires_on.timestamp())),
                      not_before=str(int(grant.not_before.timestamp())),
                      resource=form["resource"])
    return JSONResponse(answer, headers=NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body (each field's first value), at most MAX_FORM_BYTES."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise AuthorityError(
            "invalid_request", 900144,
            "The request body must be application/x-www-form-urlencoded (grant_type, "
            f"client_id, client_secret, scope); this one is '{kind[:64] or 'missing'}'.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise AuthorityError("invalid_request", 900144,
                                 f"The request body is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AuthorityError("invalid_request", 900144,
                             f"The request body cannot be read as a form: {exc}.") from None
    return {name: values[0] for name, values in fields.items() if values}


def _client(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    """client_id and client_secret from the body or an ``Authorization: Basic`` header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return form.get("client_id"), form.get("client_secret")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthorityError("invalid_client", 7000216,
                             "The Authorization: Basic header is not base64 of "
                             "client_id:client_secret.", status=401) from None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id) or form.get("client_id"), unquote(secret) or None
