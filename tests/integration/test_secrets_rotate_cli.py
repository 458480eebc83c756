"""``scaleset secrets rotate`` with keys from ``SCALESET_SECRETS_KEY`` (several replicas)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from scaleset.cli.app import app
from scaleset.security import authority, secrets
from scaleset.store import tables as t
from scaleset.store.database import open_store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(kid: str, key: bytes) -> str:
    return f"{kid}:{base64.b64encode(key).decode()}"


def _sealed_key(url: str) -> str:
    store = open_store(url)
    try:
        with store.transaction() as tx:
            state = tx.conn.execute(select(t.resources.c.state).where(
                t.resources.c.id == authority.IDENTITY_ID)).scalar_one()
    finally:
        store.close()
    return str(state["privateKey"])


def test_rotation_with_environment_keys_seals_with_the_last_one(tmp_path: Path) -> None:
    old, new, token = secrets.new_key(), secrets.new_key(), secrets.new_key()
    url = f"sqlite:///{tmp_path / 'scaleset.db'}"
    first = f"{_entry('token-hmac', token)},{_entry('old', old)}"
    store = open_store(url, cipher=secrets.load_keyring(None, environ={secrets.ENV_KEY: first}))
    identity = authority.server_identity(store, now=NOW)
    store.close()
    assert _sealed_key(url).startswith("enc:v1:old:")
    both = f"{first},{_entry('new', new)}"
    done = CliRunner().invoke(app, ["secrets", "rotate", "--data-dir", str(tmp_path)],
                              env={secrets.ENV_KEY: both})
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report == {"key": "new", "scaleSets": 0, "secrets": 1, "signingKey": True,
                      "keySource": secrets.ENV_KEY}
    assert "may now be removed" in done.stderr
    assert _sealed_key(url).startswith("enc:v1:new:")
    assert not (tmp_path / secrets.KEY_FILE).exists()  # the environment's keys, not a file
    # The new key alone opens it now.
    only_new = f"{_entry('token-hmac', token)},{_entry('new', new)}"
    store = open_store(url, cipher=secrets.load_keyring(None,
                                                        environ={secrets.ENV_KEY: only_new}))
    try:
        assert authority._read_identity(store) == identity
    finally:
        store.close()


def test_rotation_without_a_database_or_a_key_says_what_is_missing(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["secrets", "rotate", "--data-dir", str(tmp_path)],
                         env={secrets.ENV_KEY: ""})
    assert done.exit_code == 1 and "DatabaseNotFound" in done.stderr
    open_store(f"sqlite:///{tmp_path / 'scaleset.db'}").close()
    done = runner.invoke(app, ["secrets", "rotate", "--data-dir", str(tmp_path)],
                         env={secrets.ENV_KEY: ""})
    assert done.exit_code == 1 and "KeyNotFound" in done.stderr
    assert not (tmp_path / secrets.KEY_FILE).exists()


def test_rotation_leaves_no_clear_copy_from_an_older_version_in_the_file(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scaleset.db'}"
    store = open_store(url)  # an older version: the signing key in clear
    authority.server_identity(store, now=NOW)
    store.close()
    files = (tmp_path / "scaleset.db", tmp_path / "scaleset.db-wal")

    def on_disk() -> bytes:
        return b"".join(f.read_bytes() for f in files if f.exists())
    assert b"PRIVATE KEY" in on_disk()
    keyring = secrets.load_keyring(tmp_path, environ={})  # what serve's first start makes
    store = open_store(url, cipher=keyring)
    assert authority._read_identity(store) is not None  # sealed at its first read
    store.close()
    done = CliRunner().invoke(app, ["secrets", "rotate", "--data-dir", str(tmp_path)],
                              env={secrets.ENV_KEY: ""})
    assert done.exit_code == 0, done.output
    assert b"PRIVATE KEY" not in on_disk()
    assert _sealed_key(url).startswith(f"enc:v1:{json.loads(done.stdout)['key']}:")
