"""The server's own Entra-ID-compatible authority: its tenant, its signing key, its tokens.

Azure clients sign in with OAuth 2.0 client credentials (``az login
--service-principal``, azure-identity's ``ClientSecretCredential``). This
module is what the authority decides, without HTTP:

* ``server_identity`` — the tenant id (a UUID) and the RSA key that signs
  access tokens, generated once and kept in the store (``resources`` row
  ``/providers/scaleset/authority/default``), so several replicas sharing one
  database issue and accept the same tokens. The first replica to store them
  wins; another that lost the race reads the winner's. The private key is
  sealed with the store's cipher (``security/secrets.py``); one stored in clear
  by an older version is sealed at its first read.
* ``issue_token`` — checks a client-credentials request (principal, secret,
  scope or resource, tenant) and returns a signed JWT, or an ``AuthorityError``
  in the shape Entra ID answers (``invalid_client`` with AADSTS7000215 for a
  wrong secret ...), which MSAL parses.
* ``verify_access_token`` — signature, ``exp``/``nbf`` at the request's
  ``now``, audience, tenant, and the principal still existing: a deleted
  principal's token is refused from the next request.

The audience of every token is this server's resource manager endpoint (the
URL the client called, ``resource_manager``). Clients that were never told
about another cloud ask for Azure's own ARM scopes (azure-mgmt-* default to
``https://management.azure.com/.default``); those are accepted and mapped to
this server, since this server is the resource manager the client talks to.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from scaleset.security import principals
from scaleset.security.principals import Principal
from scaleset.security.tokens import Role
from scaleset.store.repository import ResourceRow, Store, StoreError, Tx

IDENTITY_ID: Final = "/providers/scaleset/authority/default"
IDENTITY_TYPE: Final = "scaleset/authority"
ALGORITHM: Final = "RS256"
LIFETIME: Final = timedelta(hours=1)
CLOCK_SKEW: Final = timedelta(minutes=5)  # what Entra ID's own resources tolerate
ADFS: Final = "adfs"
GENERIC_TENANTS: Final = frozenset({"organizations", "common", ADFS})
"""Tenant path segments that mean "this server's tenant" (``adfs``: the form az uses
without instance discovery, see ``api/routes/metadata.py``)."""
WELL_KNOWN_ARM: Final = ("https://management.azure.com", "https://management.core.windows.net")
"""Azure's public-cloud resource manager audiences: a client that defaults to them is
talking to this server, so they mean this server's endpoint."""
_RESERVED_SCOPES: Final = frozenset({"openid", "profile", "offline_access"})
MAX_FIELD_LENGTH: Final = 2048


@dataclass(frozen=True)
class ServerIdentity:
    """The tenant and the signing key; ``repr`` hides the private key."""

    tenant_id: str
    key_id: str
    private_pem: str = field(repr=False)
    public_pem: str

    def jwk(self) -> dict[str, Any]:
        """The public key as a JSON Web Key (for the JWKS document)."""
        public = serialization.load_pem_public_key(self.public_pem.encode("ascii"))
        if not isinstance(public, rsa.RSAPublicKey):  # only ever an RSA key is stored
            raise StoreError("the authority's stored public key is not an RSA key")
        key: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**key, "kid": self.key_id, "use": "sig", "alg": ALGORITHM}


class AuthorityError(Exception):
    """An OAuth error as Entra ID answers it: ``error``, an AADSTS code, a description."""

    def __init__(self, error: str, code: int, description: str, *, status: int = 400):
        super().__init__(f"AADSTS{code}: {description}")
        self.error = error
        self.code = code
        self.description = description
        self.status = status

    def body(self, *, now: datetime) -> dict[str, Any]:
        """The JSON body Entra ID sends (MSAL reads ``error`` and ``error_description``)."""
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace} "
                                 f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": [self.code], "timestamp": stamp, "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


@dataclass(frozen=True)
class Grant:
    """A token just issued."""

    access_token: str = field(repr=False)
    expires_on: datetime
    not_before: datetime
    resource: str


@dataclass(frozen=True)
class Caller:
    """Who an access token speaks for, as checked at the request."""

    principal: Principal

    @property
    def role(self) -> Role:
        return self.principal.role


# -- the identity ------------------------------------------------------------------

def server_identity(store: Store, *, now: datetime) -> ServerIdentity:
    """The server's tenant and signing key, generated and stored on first use."""
    found = _read_identity(store)
    if found is not None:
        return found
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_pem.encode("ascii"))
    identity = ServerIdentity(tenant_id=str(uuid.uuid4()), key_id=digest.finalize()[:16].hex(),
                              private_pem=private_pem, public_pem=public_pem)
    try:
        with store.transaction() as tx:
            if tx.get_resource(IDENTITY_ID, for_update=True) is None:
                tx.put_resource(ResourceRow(
                    id=IDENTITY_ID, type=IDENTITY_TYPE, parent_id=None, subscription="",
                    resource_group="", name="default", location="",
                    body={"tenantId": identity.tenant_id, "keyId": identity.key_id,
                          "publicKey": public_pem},
                    state={"privateKey": _seal_key(store, private_pem)}, created_at=now,
                    updated_at=now))
    except StoreError:
        # Another replica stored its identity a moment ago (the insert collided): use it.
        pass
    stored = _read_identity(store)
    if stored is None:
        raise StoreError("the authority's identity could not be stored")
    return stored


KEY_CONTEXT: Final = f"{IDENTITY_ID}|privateKey"
"""What the sealed signing key is bound to (a sealed value moved elsewhere does not open)."""


def _seal_key(store: Store, private_pem: str) -> str:
    return private_pem if store.cipher is None else store.cipher.seal(private_pem,
                                                                       context=KEY_CONTEXT)


def _read_identity(store: Store) -> ServerIdentity | None:
    with store.transaction() as tx:
        row = tx.get_resource(IDENTITY_ID)
    if row is None:
        return None
    stored = str(row.state["privateKey"])
    private_pem = stored if store.cipher is None else store.cipher.unseal(stored,
                                                                          context=KEY_CONTEXT)
    if private_pem == stored and store.cipher is not None:
        # Stored in clear before sealing began: sealed now, once.
        with store.transaction() as tx:
            current = tx.get_resource(IDENTITY_ID, for_update=True)
            if current is not None and current.state.get("privateKey") == stored:
                tx.put_resource(dataclasses.replace(current, state={
                    **current.state, "privateKey": _seal_key(store, private_pem)}))
    return ServerIdentity(tenant_id=str(row.body["tenantId"]), key_id=str(row.body["keyId"]),
                          private_pem=private_pem, public_pem=str(row.body["publicKey"]))


def is_our_tenant(segment: str, identity: ServerIdentity) -> bool:
    """Whether a tenant path segment names this server's tenant.

    >>> tid = "7d0e3a5c-0000-4000-8000-000000000001"
    >>> ident = ServerIdentity(tid, "k", "", "")
    >>> [is_our_tenant(t, ident) for t in ("organizations", tid.upper(), "x")]
    [True, True, False]
    """
    return segment.lower() in GENERIC_TENANTS or segment.lower() == identity.tenant_id


def check_tenant(segment: str, identity: ServerIdentity) -> None:
    """Refuse a tenant this server is not, as Entra ID does (AADSTS90002)."""
    if not is_our_tenant(segment, identity):
        raise AuthorityError(
            "invalid_request", 90002,
            f"Tenant '{segment[:128]}' not found. This server's tenant is "
            f"'{identity.tenant_id}' ('scaleset sp create' prints it); 'organizations' "
            "also works.")


# -- issuing ---------------------------------------------------------------------

def audiences(resource_manager: str) -> tuple[str, str]:
    """This server's audience, without and with the trailing slash.

    >>> audiences("https://127.0.0.1:8443/")
    ('https://127.0.0.1:8443', 'https://127.0.0.1:8443/')
    """
    base = resource_manager.rstrip("/")
    return base, base + "/"


def requested_resource(*, scope: str | None, resource: str | None,
                       resource_manager: str) -> str:
    """The resource a token request asks for, checked: always this server's endpoint.

    ``scope`` is the v2 form (``<resource>/.default``, space-separated, OIDC scopes
    ignored), ``resource`` the v1 form; either may name this server (with or without
    the trailing slash) or Azure's public ARM audience.

    >>> requested_resource(scope="https://management.azure.com//.default openid",
    ...                    resource=None, resource_manager="https://h:1")
    'https://h:1'
    """
    ours = audiences(resource_manager)
    if scope is not None:
        asked = [s for s in scope.split() if s not in _RESERVED_SCOPES]
        if not asked:
            raise AuthorityError(
                "invalid_scope", 1002012,
                "The provided value for scope is not valid. Client credential flows must "
                f"have a scope value with /.default suffixed to the resource identifier "
                f"(application ID URI), e.g. '{ours[1]}.default'.")
        names = []
        for item in asked:
            if not item.endswith("/.default"):
                raise AuthorityError(
                    "invalid_scope", 1002012,
                    f"The provided value for scope {item[:256]} is not valid. Client "
                    "credential flows must have a scope value with /.default suffixed to "
                    f"the resource identifier, e.g. '{ours[1]}.default'.")
            names.append(item[: -len("/.default")])
    elif resource is not None:
        names = [resource]
    else:
        raise AuthorityError(
            "invalid_request", 900144,
            "The request body must contain the following parameter: 'scope' (or 'resource' "
            f"on the v1 endpoint), e.g. scope={ours[1]}.default.")
    for name in names:
        if name.rstrip("/") not in (ours[0], *WELL_KNOWN_ARM):
            raise AuthorityError(
                "invalid_resource", 500011,
                f"The resource principal named {name[:256]} was not found in this tenant. "
                f"This authority issues tokens for its resource manager only: {ours[1]}.")
    return ours[0]


def issue_token(store: Store, *, tenant: str, client_id: str | None,
                client_secret: str | None, scope: str | None, resource: str | None,
                resource_manager: str, issuer_base: str, now: datetime) -> Grant:
    """A client-credentials grant: the principal's secret checked, a signed token returned.

    ``tenant`` is the path's tenant segment, ``issuer_base`` the authority's URL
    (``iss`` is ``<issuer_base>/<tenant id>/v2.0``). Raises ``AuthorityError``.
    """
    identity = server_identity(store, now=now)
    check_tenant(tenant, identity)
    for name, value in (("client_id", client_id), ("client_secret", client_secret),
                        ("scope", scope), ("resource", resource)):
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            raise AuthorityError("invalid_request", 900144,
                                 f"The parameter '{name}' is longer than {MAX_FIELD_LENGTH} "
                                 "characters.")
    if not client_id:
        raise AuthorityError("invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'client_id'.")
    audience = requested_resource(scope=scope, resource=resource,
                                  resource_manager=resource_manager)
    with store.transaction() as tx:
        found = principals.get_principal(tx, client_id)
    if found is None:
        raise AuthorityError(
            "unauthorized_client", 700016,
            f"Application with identifier '{client_id[:64]}' was not found in the directory "
            f"'{identity.tenant_id}'. 'scaleset sp list' shows the service principals; the "
            "appId is the client id.")
    principal, secret_hash = found
    if not client_secret:
        raise AuthorityError(
            "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.", status=401)
    if not principals.secret_matches(client_secret, secret_hash):
        raise AuthorityError(
            "invalid_client", 7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            "the client secret value (the password 'scaleset sp create' printed) for app "
            f"'{principal.app_id}'.", status=401)
    expires = now + LIFETIME
    claims = {
        "aud": audience, "iss": f"{issuer_base.rstrip('/')}/{identity.tenant_id}/v2.0",
        "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
        "exp": int(expires.timestamp()), "tid": identity.tenant_id,
        "oid": principal.object_id, "sub": principal.object_id,
        "appid": principal.app_id, "azp": principal.app_id, "appidacr": "1",
        "azpacr": "1", "idtyp": "app", "roles": [principal.role.value], "ver": "2.0",
        "uti": secrets.token_urlsafe(16),
    }
    token = jwt.encode(claims, identity.private_pem, algorithm=ALGORITHM,
                       headers={"kid": identity.key_id})
    return Grant(access_token=token, expires_on=expires, not_before=now, resource=audience)


# -- verifying -------------------------------------------------------------------

def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (three base64url parts) rather than an opaque one.

    >>> looks_like_jwt("eyJhbGciOi.eyJhdWQi.c2ln"), looks_like_jwt("sst_0a1b2c3d_x")
    (True, False)
    """
    return token.startswith("eyJ") and token.count(".") == 2


def verify_access_token(store: Store, token: str, *, resource_manager: str,
                        now: datetime) -> Caller | None:
    """Who the token speaks for, or None when it is not valid here and now.

    Checked: the signature (this server's key), ``exp`` at ``now`` (``nbf`` with
    five minutes' skew), the audience (this server, either slash form), the tenant,
    and that the principal still exists (its role is the stored one).
    """
    identity = stored_identity(store)
    if identity is None:
        return None
    claims = verified_claims(identity, token, resource_manager=resource_manager)
    if claims is None:
        return None
    with store.transaction() as tx:
        return caller_of(tx, identity, claims, now=now)


def stored_identity(store: Store) -> ServerIdentity | None:
    """The server's identity if one is stored (None before the first token is issued).
    Its tenant and public key never change once stored (``secrets rotate`` re-seals
    only the private key), so a verifier may keep them."""
    return _read_identity(store)


def verified_claims(identity: ServerIdentity, token: str, *, resource_manager: str
                    ) -> dict[str, Any] | None:
    """The token's claims if its signature is ``identity``'s and its audience this server
    (the CPU part of ``verify_access_token``, the same for a token until it expires:
    callers may keep the answer); None otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, identity.public_pem, algorithms=[ALGORITHM],
            audience=list(audiences(resource_manager)),
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "require": ["exp", "nbf", "aud", "tid", "appid"]})
    except jwt.PyJWTError:
        return None
    return claims


def caller_of(tx: Tx, identity: ServerIdentity, claims: Mapping[str, Any], *,
              now: datetime) -> Caller | None:
    """Who verified ``claims`` speak for at ``now``, read in ``tx``: in time, this tenant,
    and a principal that still exists (its role is the stored one); else None."""
    if not _in_time(claims, now) or str(claims.get("tid")) != identity.tenant_id:
        return None
    found = principals.get_principal(tx, str(claims["appid"]))
    if found is None or found[0].object_id != claims.get("oid"):
        return None
    return Caller(found[0])


def _in_time(claims: Mapping[str, Any], now: datetime) -> bool:
    try:
        exp, nbf = float(claims["exp"]), float(claims["nbf"])
    except (TypeError, ValueError):
        return False
    at = now.timestamp()
    # A replica whose clock runs a little behind the issuer's still accepts a fresh
    # token; expiry is exact, so a token never outlives its hour.
    return nbf - CLOCK_SKEW.total_seconds() <= at < exp


def jwks(identities: Iterable[ServerIdentity]) -> dict[str, Any]:
    """The JSON Web Key Set document of these identities' keys."""
    return {"keys": [i.jwk() for i in identities]}
