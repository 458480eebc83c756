"""Token digests are keyed (HMAC with the server's token key): a copy of the tokens table
cannot be brute-forced offline, and rows from before keyed digests still verify."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from scaleset.security import secrets, tokens
from scaleset.security.secrets import Keyring
from scaleset.security.tokens import Role
from scaleset.store import tables as t
from scaleset.store.repository import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _keyring() -> Keyring:
    return Keyring((("k1", secrets.new_key()),), secrets.new_key())


def _stored_hashes(store: Store) -> set[str]:
    with store.transaction() as tx:
        return set(tx.conn.execute(select(t.tokens.c.token_hash)).scalars())


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_the_table_holds_no_sha256_of_any_token_and_the_tokens_verify(store: Store) -> None:
    store.cipher = _keyring()
    issued = tokens.create_token(store, role="reader", now=NOW)
    boot = tokens.ensure_bootstrap_token(store, env_value="weak-bootstrap", now=NOW)
    assert boot is None  # tokens existed: stored, not printed
    stored = _stored_hashes(store)
    assert len(stored) == 2
    for value in (issued.token, "weak-bootstrap"):
        assert _sha256(value) not in stored
        assert not any(_sha256(value)[:8] == i.token_id for i in tokens.list_tokens(store))
    assert tokens.verify_token(store, issued.token, now=NOW) is Role.READER
    assert tokens.verify_token(store, "weak-bootstrap", now=NOW) is Role.CONTRIBUTOR
    # Another server key: the same table admits nobody.
    store.cipher = _keyring()
    assert tokens.verify_token(store, issued.token, now=NOW) is None


def test_a_legacy_sha256_row_still_verifies_and_is_rekeyed(store: Store) -> None:
    legacy = "sst_0badc0de_legacy-secret"
    with store.transaction() as tx:
        tx.conn.execute(insert(t.tokens).values(
            token_hash=_sha256(legacy), token_id="0badc0de", role="contributor",
            description="from an older version", created_at=NOW,
            expires_at=NOW + timedelta(days=1)))
    keyring = _keyring()
    store.cipher = keyring
    assert tokens.verify_token(store, legacy, now=NOW) is Role.CONTRIBUTOR
    assert _stored_hashes(store) == {keyring.digest(legacy)}
    assert tokens.verify_token(store, legacy, now=NOW) is Role.CONTRIBUTOR
    # Expiry and revocation as before.
    assert tokens.verify_token(store, legacy, now=NOW + timedelta(days=2)) is None
    assert tokens.revoke_token(store, "0badc0de")
    assert tokens.verify_token(store, legacy, now=NOW) is None


def test_a_legacy_bootstrap_row_is_not_stored_twice(store: Store) -> None:
    with store.transaction() as tx:
        tx.conn.execute(insert(t.tokens).values(
            token_hash=_sha256("chosen-boot"), token_id=_sha256("chosen-boot")[:8],
            role="contributor", description="bootstrap", created_at=NOW))
    store.cipher = _keyring()
    assert tokens.ensure_bootstrap_token(store, env_value="chosen-boot", now=NOW) is None
    assert len(tokens.list_tokens(store)) == 1
    assert tokens.verify_token(store, "chosen-boot", now=NOW) is Role.CONTRIBUTOR
