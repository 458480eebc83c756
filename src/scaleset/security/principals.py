"""Service principals: the identities that sign in to the server's authority.

A principal is what ``az ad sp create-for-rbac`` makes in Entra ID: an
application id (``appId``, the OAuth ``client_id``), an object id (the token's
``oid``), a display name, one role (``reader`` or ``contributor``, the same
roles as bearer tokens) and a client secret. The secret exists only in
``create_principal``'s answer; the store keeps a salted scrypt hash of it
(``scrypt$n$r$p$salt$hash``), so a copy of the database lets nobody sign in,
and checking a secret costs tens of milliseconds, which makes guessing slow.

Principals are rows of the generic ``resources`` table (type
``scaleset/servicePrincipals``, no subscription or resource group), so
several replicas sharing one database see the same principals, and deleting
one revokes it: access tokens name the principal (``appid``) and the API
looks it up on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from scaleset.errors import InvalidParameter
from scaleset.security.tokens import Role
from scaleset.store.repository import ResourceRow, Store, Tx

TYPE: Final = "scaleset/servicePrincipals"
PARENT: Final = "/providers/scaleset/servicePrincipals"
MAX_NAME_LENGTH: Final = 120  # Entra ID's limit for an application's display name
MAX_SECRET_LENGTH: Final = 256
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check
_APP_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Principal:
    """What may be shown about a principal (never its secret or its hash)."""

    app_id: str
    object_id: str
    display_name: str
    role: Role
    created_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The principal as the API lists it."""
        return {"appId": self.app_id, "objectId": self.object_id,
                "displayName": self.display_name, "role": self.role.value,
                "createdAt": self.created_at.isoformat()}


@dataclass(frozen=True)
class IssuedPrincipal:
    """A principal just created: the only time its password is known. ``repr`` hides it."""

    principal: Principal
    password: str = field(repr=False)


def is_app_id(value: str) -> bool:
    """Whether ``value`` reads as an application id (a GUID).

    >>> is_app_id("0b1f6a6e-8f0e-4c57-9a4c-2f1d5b7e9a10"), is_app_id("../x")
    (True, False)
    """
    return bool(_APP_ID.match(value))


def principal_id(app_id: str) -> str:
    """The principal's key in the ``resources`` table."""
    return f"{PARENT}/{app_id.lower()}"


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``secret``, with its parameters, as one string."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return "$".join(("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P),
                     _b64(salt), _b64(digest)))


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` (a ``hash_secret`` string) was made from.

    >>> secret_matches("s3cret", hash_secret("s3cret")), secret_matches("x", hash_secret("y"))
    (True, False)
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
        got = hashlib.scrypt(secret.encode("utf-8"),
                             salt=base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)),
                             n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):  # a damaged hash admits nobody
        return False
    return hmac.compare_digest(got, expected)


def check_name(name: str) -> None:
    """Refuse a display name Entra ID would refuse, or one that breaks a terminal."""
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"A service principal's name must be 1 to {MAX_NAME_LENGTH} characters long; "
            f"this one has {len(name)}.", target="name")
    if any(not c.isprintable() for c in name):
        raise InvalidParameter("A service principal's name may not contain control "
                               "characters; choose one without.", target="name")


def create_principal(store: Store, *, role: Role | str, name: str | None,
                     now: datetime) -> IssuedPrincipal:
    """Store a new principal and return it with its password (shown only now).

    Without ``name`` it is called ``scaleset-sp-<UTC time>``, as az names its own.
    """
    try:
        chosen = Role(role)
    except ValueError:
        raise InvalidParameter(
            f"Unknown role '{role}'; use one of: {', '.join(r.value for r in Role)}.",
            target="role") from None
    display_name = name if name is not None else f"scaleset-sp-{now:%Y-%m-%d-%H-%M-%S}"
    check_name(display_name)
    password = new_secret()
    principal = Principal(app_id=str(uuid.uuid4()), object_id=str(uuid.uuid4()),
                          display_name=display_name, role=chosen, created_at=now)
    with store.transaction() as tx:
        tx.put_resource(ResourceRow(
            id=principal_id(principal.app_id), type=TYPE, parent_id=None, subscription="",
            resource_group="", name=principal.app_id, location="",
            body=principal.to_wire(), state={"secretHash": hash_secret(password)},
            created_at=now, updated_at=now))
    return IssuedPrincipal(principal, password)


def new_secret() -> str:
    """A fresh client secret: 40 URL-safe characters, as Entra ID's are.

    It never starts with ``-``: az (argparse) would read ``-p -abc…`` as a
    missing value and a new flag, so one secret in 64 could not be typed as
    the help shows it.
    """
    while True:
        secret = secrets.token_urlsafe(30)
        if not secret.startswith("-"):
            return secret


def get_principal(tx: Tx, app_id: str) -> tuple[Principal, str] | None:
    """The principal with this application id and its secret's hash, or None."""
    if not is_app_id(app_id):
        return None
    row = tx.get_resource(principal_id(app_id))
    if row is None or row.type.lower() != TYPE.lower():
        return None
    principal = _from_body(row.body)
    return (principal, str(row.state.get("secretHash", ""))) if principal else None


def list_principals(store: Store) -> list[Principal]:
    """Every principal, oldest first."""
    with store.transaction() as tx:
        rows = tx.resources(TYPE)
    found = [p for p in (_from_body(r.body) for r in rows) if p is not None]
    return sorted(found, key=lambda p: (p.created_at, p.app_id))


def delete_principal(store: Store, app_id: str) -> bool:
    """Delete the principal: its tokens are refused from the next request. False if none."""
    if not is_app_id(app_id):
        return False
    with store.transaction() as tx:
        return tx.delete_resource(principal_id(app_id))


def _from_body(body: Mapping[str, Any]) -> Principal | None:
    try:
        return Principal(app_id=str(body["appId"]), object_id=str(body["objectId"]),
                         display_name=str(body["displayName"]), role=Role(body["role"]),
                         created_at=datetime.fromisoformat(str(body["createdAt"])))
    except (KeyError, ValueError):  # a row in an unknown shape admits nobody
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
