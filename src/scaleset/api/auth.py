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

What it costs: an opaque token's role is kept in memory (``tokens.TokenCache``), valid
for one revision of the tokens table, and each request reads that revision, so a revoke
by any process counts from the next request. An access token's signature check (CPU) is
kept until the token expires; its principal is still read on every request. ``READ`` and
``WRITE`` check in a transaction of their own; a route that reads the store takes
``read_in_tx`` / ``write_in_tx`` instead (async: no thread-pool hop) and opens its one
transaction with ``Credential.transaction()``, which checks the token first.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from scaleset.api import access
from scaleset.api.context import ApiContext, get_context
from scaleset.errors import Forbidden, Unauthenticated
from scaleset.security import authority
from scaleset.security import tokens
from scaleset.security.tokens import Role
from scaleset.store.repository import Store, Tx
from scaleset.ui import sessions


@dataclass
class Credential:
    """The token a request carried, parsed but not yet checked against the store.

    ``transaction()`` is the only way to it: it checks the token in the transaction
    it opens, before the route reads anything.
    """

    request: Request = field(repr=False)
    context: ApiContext = field(repr=False)
    required: Role
    token: str | None = field(default=None, repr=False)  # None: auth is off
    cookie: bool = False
    role: Role | None = None
    """The token's role once ``transaction()`` checked it (contributor when auth is off)."""

    rekey_pending: bool = False
    """The token's row is keyed the legacy way: ``rekey()`` once the transaction ended."""

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """The request's one transaction, its token checked first (401/403 raised)."""
        with self.checked() as tx:
            yield tx
        self.rekey()

    @contextmanager
    def checked(self) -> Iterator[Tx]:
        """``transaction()`` without its one possible write afterwards: a legacy row's
        re-keying is left to ``rekey()`` (``rekey_pending``), so that a read on the event
        loop never waits for the write lock."""
        with self.context.store.transaction() as tx:
            if self.token is None:
                self.role = Role.CONTRIBUTOR
            else:
                self.role, self.rekey_pending = _check(
                    self.request, self.context, tx, self.token, self.required,
                    cookie=self.cookie)
            yield tx

    def rekey(self) -> None:
        """Key the token's legacy row by the keyed digest, if ``checked()`` found one so
        (its own write transaction)."""
        if self.rekey_pending and self.token is not None:
            self.rekey_pending = False
            tokens.rekey(self.context.store, self.token)


def reads_on_loop(store: Store) -> bool:
    """Whether a route's few primary-key reads may run on the event loop rather than cost a
    thread-pool hop: only on an SQLite file in WAL mode (a reader never waits for a
    writer; no network) while its pool has a connection to spare, so the checkout never
    waits for one that a thread holds. PostgreSQL's reads cross a socket: they keep the
    hop; so does a database whose WAL could not be turned on (its readers wait for
    writers)."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        return False
    pool = engine.pool
    if not isinstance(pool, QueuePool) or pool.checkedout() >= pool.size():
        return False
    wal = _wal.get(engine)
    if wal is None:  # once per engine: every connection gets the same pragmas
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        wal = _wal[engine] = str(mode).lower() == "wal"
    return wal


_wal: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
"""Whether each SQLite engine's database is in WAL mode (``reads_on_loop``)."""


def _credential(request: Request, context: ApiContext, role: Role) -> Credential:
    """Parse the header (or the dashboard's cookie): 401 when there is no token."""
    if not context.auth_required:
        return Credential(request, context, role)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    cookie = request.cookies.get(sessions.COOKIE) if not header else None
    if cookie:
        token, scheme = cookie, "bearer"
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Authentication failed: the request has no 'Authorization: Bearer <token>' "
            "header. Create a token with 'scaleset token create' and send it.")
    return Credential(request, context, role, token.strip(), cookie=bool(cookie))


def _check(request: Request, context: ApiContext, tx: Tx, token: str, role: Role, *,
           cookie: bool) -> tuple[Role, bool]:
    """Refuse the request (401, 403) unless ``token`` has ``role`` as of ``tx``: (its role,
    whether its row needs re-keying once ``tx`` has ended)."""
    found, rekey = _verify_in(tx, request, context, token)
    if found is None:
        raise Unauthenticated(
            "Authentication failed: the bearer token is not known to this server, was "
            "revoked or has expired (an access token also needs this server as its "
            "audience and a service principal that still exists).",
            code="InvalidAuthenticationToken")
    access.note_caller(request, role=found.value)  # for the request's log line
    if cookie and request.method not in sessions.SAFE_METHODS and not sessions.csrf_matches(
            context.store, token, request.headers.get(sessions.CSRF_HEADER)):
        raise Forbidden(
            f"{request.method} {request.url.path} came with the dashboard's session cookie "
            f"but without the '{sessions.CSRF_HEADER}' header that session's page sends: "
            "a write from a browser must come from this server's own dashboard (or send "
            "'Authorization: Bearer <token>').", code="InvalidCsrfToken")
    if not found.allows(role):
        raise Forbidden(
            f"The token has role '{found.value}', which may not perform "
            f"{request.method} {request.url.path}; this needs a '{role.value}' token.")
    return found, rekey


def in_tx(role: Role) -> Callable[..., Awaitable[Credential]]:
    """A dependency for a route that checks the token in its own one transaction: no
    store I/O here (async, so no thread-pool hop); the route must open its transaction
    with ``Credential.transaction()``."""

    async def parse(request: Request) -> Credential:
        return credential(request, role)

    return parse


def credential(request: Request, role: Role) -> Credential:
    """What ``in_tx(role)`` gives, for a dependency that checks something else first
    (FastAPI resolves each dependency per request: one doing both costs less)."""
    return _credential(request, get_context(request), role)


def require(role: Role) -> Callable[..., Role]:
    """A dependency that admits requests whose token has at least ``role``."""

    def check(request: Request, context: ApiContext = Depends(get_context)) -> Role:
        credential = _credential(request, context, role)
        if credential.token is None:
            return Role.CONTRIBUTOR
        with credential.transaction():
            pass  # the check is all this transaction does
        assert credential.role is not None  # set by the check, or it raised
        return credential.role

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
    """The role the token carries here and now, or None (in a transaction of its own)."""
    with context.store.transaction() as tx:
        found, rekey = _verify_in(tx, request, context, token)
    if rekey:
        tokens.rekey(context.store, token)
    return found


def _verify_in(tx: Tx, request: Request, context: ApiContext, token: str
               ) -> tuple[Role | None, bool]:
    """(the role the token carries as of ``tx`` and now, or None; whether to re-key)."""
    now = context.clock.now()
    if authority.looks_like_jwt(token):
        caller = _access_token_caller(tx, request, context, token, now)
        if caller is not None:
            access.note_caller(request, role=caller.role.value,
                               principal=caller.principal.app_id)
        return (caller.role if caller is not None else None), False
    return context.token_cache.check(tx, context.store, token, now=now)


def _access_token_caller(tx: Tx, request: Request, context: ApiContext, token: str,
                         now: datetime) -> authority.Caller | None:
    """An access token's caller: its signature checked once while it is kept, its time,
    tenant and principal on every request (a deleted principal is locked out at once)."""
    identity = context.authority_identity
    if identity is None:
        identity = context.authority_identity = authority.stored_identity(context.store)
        if identity is None:
            return None
    audience = str(request.base_url)
    claims: dict[str, Any] | None = context.access_tokens.get((token, audience),
                                                                  at=now.timestamp())
    if claims is None:
        claims = authority.verified_claims(identity, token, resource_manager=audience)
        if claims is None:
            return None
        context.access_tokens.put((token, audience), claims, _expiry(claims))
    return authority.caller_of(tx, identity, claims, now=now)


def _expiry(claims: dict[str, Any]) -> float:
    try:
        return float(claims["exp"])
    except (TypeError, ValueError):
        return 0.0  # caller_of refuses it anyway; nothing to keep


READ = require(Role.READER)
WRITE = require(Role.CONTRIBUTOR)
read_in_tx = in_tx(Role.READER)
write_in_tx = in_tx(Role.CONTRIBUTOR)
