"""Bearer tokens: who may call the API, and with which role.

A token reads ``sst_<token_id>_<secret>``: ``token_id`` is 8 hex digits, public
(shown by ``scaleset token list``, used to revoke), and ``secret`` comes from
``secrets.token_urlsafe``. The ``tokens`` table keeps only a keyed digest of the
whole token (HMAC-SHA256 with the server's token key, ``security/secrets.py``,
which is never in the database), so a copy of the database lets nobody call the
API nor try guesses offline, and a lookup is one primary-key read by digest:
nothing ever compares secrets, so there is no comparison to time. Rows written
before keyed digests (plain sha256) still verify, and are re-keyed at that use.
A store without a cipher (tests, tools) keeps plain sha256.

A token may expire (``expires_at``); from that instant it is refused as an
unknown one is. Revoking deletes the row, so a revoked token is unknown.

Every create and revoke bumps the ``tokens`` row of ``revisions`` in its own
transaction. ``TokenCache`` keeps tokens' roles in memory for one revision: a
request reads the revision in its transaction (``check``), and a changed revision
empties the cache, so a token revoked by any process sharing the database (``scaleset
token revoke`` beside ``serve``) is refused from the next request on.

Roles: a ``reader`` may GET; a ``contributor`` may also write and run actions
(``Role.allows``). ``ensure_bootstrap_token`` makes sure a new server can be
reached at all: it issues the first contributor token (``SCALESET_BOOTSTRAP_TOKEN``
when set), which ``serve`` prints once.

Errors: ``InvalidParameter`` for a bad value or description, ``Conflict`` for a
token value that is already stored; database failures stay ``StoreError``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from sqlalchemy import Connection, bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from scaleset.errors import Conflict, InvalidParameter
from scaleset.store import tables as t
from scaleset.store.repository import Store, StoreError, Tx

PREFIX = "sst"
MAX_TOKEN_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 256  # the column's width
BOOTSTRAP_ENV = "SCALESET_BOOTSTRAP_TOKEN"
MAX_LIFETIME = timedelta(days=3650)
"""Ten years: an expiry further away is a typo (and keeps datetime arithmetic far from limits)."""
REVISION = "tokens"
"""The ``revisions`` row that every token create and revoke bumps."""
CACHE_SIZE = 4096
"""Tokens whose roles a server keeps in memory (the least recently used go first)."""


class Role(StrEnum):
    READER = "reader"
    CONTRIBUTOR = "contributor"

    def allows(self, required: Role) -> bool:
        """Whether a token with this role may do what needs ``required``.

        >>> Role.CONTRIBUTOR.allows(Role.READER), Role.READER.allows(Role.CONTRIBUTOR)
        (True, False)
        """
        return _RANK[self] >= _RANK[Role(required)]


_RANK = {Role.READER: 1, Role.CONTRIBUTOR: 2}


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only time its secret is known. ``repr`` hides it."""

    token: str = field(repr=False)
    token_id: str
    role: Role
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a stored token (never its secret or its hash)."""

    token_id: str
    role: Role
    description: str | None
    created_at: datetime
    expires_at: datetime | None = None


def hash_token(token: str) -> str:
    """The sha256 hex digest of the whole token: its key in the ``tokens`` table.

    >>> hash_token("sst_00000000_x")[:12]
    'fd74b1c639ba'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random ``(token, token_id)``."""
    token_id = secrets.token_hex(4)
    return f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}", token_id


def check_value(value: str, *, target: str = "value") -> None:
    """Refuse a chosen token that could not travel in an ``Authorization`` header."""
    if not value or len(value) > MAX_TOKEN_LENGTH:
        raise InvalidParameter(
            f"A token must be 1 to {MAX_TOKEN_LENGTH} characters long; this one has "
            f"{len(value)}.", target=target)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise InvalidParameter(
            "A token may not contain whitespace or control characters; choose one without.",
            target=target)


def create_token(store: Store, *, role: Role | str, description: str | None = None,
                 value: str | None = None, expires_at: datetime | None = None,
                 now: datetime) -> IssuedToken:
    """Store a new token and return it (the only time the secret is seen).

    ``value`` lets an operator choose the token; its ``token_id`` is then the
    first 8 hex digits of its digest, the same in every database sharing the key.

    >>> issued = create_token(store, role="reader", now=clock.now())  # doctest: +SKIP
    >>> verify_token(store, issued.token)  # doctest: +SKIP
    <Role.READER: 'reader'>
    """
    try:
        chosen_role = Role(role)
    except ValueError:
        raise InvalidParameter(
            f"Unknown role '{role}'; use one of: {', '.join(r.value for r in Role)}.",
            target="role") from None
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidParameter(
            f"A description is at most {MAX_DESCRIPTION_LENGTH} characters; this one has "
            f"{len(description)}.", target="description")
    if value is not None:
        check_value(value)
    if expires_at is not None and expires_at <= now:
        raise InvalidParameter(
            f"The expiry {expires_at.isoformat()} is not in the future (now is "
            f"{now.isoformat()}); give a later time or a positive duration.",
            target="expiresAt")
    if expires_at is not None and expires_at - now > MAX_LIFETIME:
        raise InvalidParameter(
            f"The expiry {expires_at.isoformat()} is more than {MAX_LIFETIME.days} days away.",
            target="expiresAt")
    try:
        with store.transaction() as tx:
            return _insert(tx.conn, store, role=chosen_role, description=description,
                           value=value, now=now, expires_at=expires_at)
    except StoreError as exc:
        if isinstance(exc.__cause__, IntegrityError):  # lost a race with an equal insert
            raise _duplicate() from exc
        raise


def token_digest(store: Store, token: str) -> str:
    """The key of ``token`` in the ``tokens`` table: keyed when the store has a cipher."""
    return store.cipher.digest(token) if store.cipher is not None else hash_token(token)


def verify_token(store: Store, token: str, *, now: datetime | None = None) -> Role | None:
    """The role of ``token``, or None when it is not known, was revoked, or expired by ``now``.

    ``now`` None skips the expiry check (only for callers that check existence).
    A row still keyed by the legacy sha256 is re-keyed when it matches.
    """
    with store.transaction() as tx:
        found = _lookup(tx, store, token)
    return _settled(store, token, found, now)


@dataclass(frozen=True)
class StoredToken:
    """A token's row as a request needs it: its role, its expiry, how it is keyed."""

    role: str
    expires_at: datetime | None
    legacy: bool = False  # found by its plain sha256: re-key it

    def role_at(self, now: datetime | None) -> Role | None:
        if self.role not in _RANK:  # an unknown role in the table admits nobody
            return None
        if now is not None and self.expires_at is not None and now >= self.expires_at:
            return None
        return Role(self.role)


# Built once: a statement built per request costs more than SQLite takes to run it.
_BY_DIGEST = select(t.tokens.c.role, t.tokens.c.expires_at).where(
    t.tokens.c.token_hash == bindparam("digest"))
_REVISION = select(t.revisions.c.revision).where(t.revisions.c.name == REVISION)


def _lookup(tx: Tx, store: Store, token: str) -> StoredToken | None:
    digest, legacy = token_digest(store, token), hash_token(token)
    row = tx.conn.execute(_BY_DIGEST, {"digest": digest}).one_or_none()
    if row is not None:
        return StoredToken(row.role, row.expires_at)
    if legacy == digest:
        return None
    row = tx.conn.execute(_BY_DIGEST, {"digest": legacy}).one_or_none()
    return StoredToken(row.role, row.expires_at, legacy=True) if row is not None else None


def _settled(store: Store, token: str, found: StoredToken | None, now: datetime | None
             ) -> Role | None:
    """The role ``found`` gives at ``now``, after re-keying a legacy row (its own
    transaction, after the caller's has ended)."""
    if found is not None and found.legacy:  # written before keyed digests: keyed from now on
        _rekey(store, hash_token(token), token_digest(store, token))
    return found.role_at(now) if found is not None else None


def rekey(store: Store, token: str) -> None:
    """Key ``token``'s legacy (plain sha256) row by the keyed digest, in a transaction of
    its own (a no-op for any other row)."""
    _rekey(store, hash_token(token), token_digest(store, token))


def revision(tx: Tx) -> int:
    """The tokens' revision now: bumped by every create and revoke (0 before the first)."""
    value = tx.conn.execute(_REVISION).scalar()
    return int(value) if value is not None else 0


class TokenCache:
    """Tokens' rows kept in memory, valid for one ``revision`` of the tokens table.

    Safe across threads. An entry is added only by a transaction that read the cache's
    own revision, so a row read before a revoke committed never outlives the revoke;
    a transaction that read an older revision than the cache's (it began before a
    change another request already saw) neither uses nor fills the cache.

    >>> cache = TokenCache()
    >>> with store.transaction() as tx:  # doctest: +SKIP
    ...     role = cache.check(tx, store, token, now=clock.now())
    """

    def __init__(self, *, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._revision = -1
        self._rows: OrderedDict[str, StoredToken] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"TokenCache(revision={self._revision}, tokens={len(self._rows)}, "
                f"hits={self.hits}, misses={self.misses})")

    def check(self, tx: Tx, store: Store, token: str, *, now: datetime
              ) -> tuple[Role | None, bool]:
        """(the role of ``token`` at ``now`` as of ``tx``, or None: unknown, revoked,
        expired; whether its row is keyed the legacy way: call ``rekey`` once ``tx`` has
        ended). One read of the revision; the token's row only on a miss."""
        return self.answer(revision(tx), token_digest(store, token),
                           lambda: _lookup(tx, store, token), now=now)

    def answer(self, seen: int, digest: str, load: Callable[[], StoredToken | None], *,
               now: datetime) -> tuple[Role | None, bool]:
        """``check`` once the revision ``seen`` was read: ``load`` reads the token's row
        (in the same transaction) when the cache cannot answer."""
        with self._lock:
            if seen > self._revision:
                self._revision, self._rows = seen, OrderedDict()
            cached = self._rows.get(digest) if seen == self._revision else None
            if cached is not None:
                self._rows.move_to_end(digest)
                self.hits += 1
        if cached is not None:
            return cached.role_at(now), False
        self.misses += 1
        found = load()
        if found is not None and not found.legacy:
            with self._lock:
                # Kept only if no newer revision was seen meanwhile: a row read before a
                # revoke committed must not answer for the requests after it.
                if seen == self._revision:
                    self._rows[digest] = found
                    if len(self._rows) > self._size:
                        self._rows.popitem(last=False)
        if found is None:
            return None, False
        return found.role_at(now), found.legacy


K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most ``size`` values, each until its own instant (a POSIX timestamp); the least
    recently used go first. Safe across threads. For verified access tokens: their
    signature check is the same answer until they expire.

    >>> cache: ExpiringCache[str, int] = ExpiringCache(size=2)
    >>> cache.put("a", 1, until=100.0)
    >>> cache.get("a", at=99.0), cache.get("a", at=100.0)
    (1, None)
    """

    def __init__(self, *, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"ExpiringCache(size={self._size}, items={len(self._items)})"

    def get(self, key: K, *, at: float) -> V | None:
        """The value kept for ``key`` if the instant ``at`` is still before its own."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if at >= found[1]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, until: float) -> None:
        """Keep ``value`` for ``key`` until the instant ``until``."""
        with self._lock:
            self._items[key] = (value, until)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every stored token, oldest first, without secrets."""
    c = t.tokens.c
    with store.transaction() as tx:
        rows = tx.conn.execute(select(c.token_id, c.role, c.description, c.created_at,
                                      c.expires_at)
                               .order_by(c.created_at, c.token_id)).all()
    return [TokenInfo(r.token_id, Role(r.role), r.description, r.created_at, r.expires_at)
            for r in rows]


def revoke_token(store: Store, token_id: str) -> bool:
    """Delete the token with this id; False when there was none."""
    with store.transaction() as tx:
        result = tx.conn.execute(delete(t.tokens).where(t.tokens.c.token_id == token_id))
        if result.rowcount > 0:
            _bump(tx.conn)
    return result.rowcount > 0


def ensure_bootstrap_token(store: Store, *, env_value: str | None,
                           now: datetime) -> IssuedToken | None:
    """Make sure the server can be reached: returns a token to print once, or None.

    * no token stored: create a contributor token (``env_value`` when given,
      else random) and return it;
    * tokens stored and ``env_value`` not among them: store it as a contributor
      token too (operators expect the bootstrap token to work) and return None;
    * otherwise: change nothing and return None.
    """
    value = (env_value or "").strip() or None
    if value is not None:
        check_value(value, target=BOOTSTRAP_ENV)
    try:
        with store.transaction() as tx:
            conn = tx.conn
            if value is not None and (_hash_stored(conn, token_digest(store, value))
                                      or _hash_stored(conn, hash_token(value))):
                return None
            first = not conn.execute(select(exists().select_from(t.tokens))).scalar()
            if not first and value is None:
                return None
            description = f"bootstrap ({BOOTSTRAP_ENV})" if value else "bootstrap (generated)"
            issued = _insert(conn, store, role=Role.CONTRIBUTOR, description=description,
                             value=value, now=now)
            return issued if first else None
    except (Conflict, StoreError):
        # Another server process stored the same bootstrap token a moment ago.
        if value is not None and verify_token(store, value) is not None:
            return None
        raise


# -- inside a transaction --------------------------------------------------------

def _insert(conn: Connection, store: Store, *, role: Role, description: str | None,
            value: str | None, now: datetime, expires_at: datetime | None = None
            ) -> IssuedToken:
    if value is None:
        token, token_id = new_token()
        while _id_taken(conn, token_id):  # 1 in 4 billion per existing token
            token, token_id = new_token()
    else:
        # Keyed too: a public id from a plain hash would let guesses be tried offline.
        token, token_id = value, token_digest(store, value)[:8]
        if _hash_stored(conn, token_digest(store, token)) or _hash_stored(
                conn, hash_token(token)) or _id_taken(conn, token_id):
            raise _duplicate()
    conn.execute(insert(t.tokens).values(
        token_hash=token_digest(store, token), token_id=token_id, role=role.value,
        description=description, created_at=now, expires_at=expires_at))
    _bump(conn)
    return IssuedToken(token=token, token_id=token_id, role=role, expires_at=expires_at)


def _bump(conn: Connection) -> None:
    """Bump the tokens' revision, in the transaction that changes a token."""
    c = t.revisions.c
    result = conn.execute(update(t.revisions).where(c.name == REVISION)
                          .values(revision=c.revision + 1))
    if result.rowcount == 0:  # a schema without migration 0008's row (it is made there)
        conn.execute(insert(t.revisions).values(name=REVISION, revision=1))


def _rekey(store: Store, legacy: str, digest: str) -> None:
    """Key a row from before keyed digests (a no-op for any other row)."""
    try:
        with store.transaction() as tx:
            tx.conn.execute(update(t.tokens).where(t.tokens.c.token_hash == legacy)
                            .values(token_hash=digest))
    except StoreError:
        pass  # busy, or a concurrent request re-keyed it: the next use tries again


def _hash_stored(conn: Connection, digest: str) -> bool:
    return conn.execute(select(exists().where(t.tokens.c.token_hash == digest))).scalar() is True


def _id_taken(conn: Connection, token_id: str) -> bool:
    return conn.execute(select(exists().where(t.tokens.c.token_id == token_id))).scalar() is True


def _duplicate() -> Conflict:
    return Conflict(
        "A token with this value already exists; choose another value, or revoke the "
        "existing token ('scaleset token list' shows its id) first.", target="value")
