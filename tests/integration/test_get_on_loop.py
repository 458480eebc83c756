"""A GET of a scale set answers the same on the event loop (SQLite) as on a thread.

On an SQLite file with a pooled connection to spare, the GET's transaction runs on the
event loop and only rendering and writes hop to a thread (``routes/scalesets.py``);
otherwise (PostgreSQL, an in-memory database, a pool whose connections threads hold) the
whole read is one thread-pool hop. Both must give the same answers, in one transaction,
honouring a revoke from the very next request and re-keying a legacy token row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, insert, select

from scaleset.api import auth
from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.security import secrets, tokens
from scaleset.store import tables as t
from scaleset.store.database import make_engine
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

SET = f"{RG}/virtualMachineScaleSets/vmss1"


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world, self.client = world, client

    def send(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                   **kwargs)

    def token(self, role: str) -> str:
        return tokens.create_token(self.world.store, role=role,
                                   now=self.world.clock.now()).token


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[Api]:
    world = World.create(sqlite_store)
    context = ApiContext(store=sqlite_store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


def _answers(api: Api, token: str) -> list[tuple[int, bytes, str | None]]:
    paths = (SET + V, f"{RG}/virtualMachineScaleSets/absent{V}",
             f"{RG}/virtualMachineScaleSets/vmss1?api-version=1999-01-01", SET)
    return [(r.status_code, r.content, r.headers.get("ETag"))
            for r in (api.send("GET", path, token) for path in paths)]


def test_the_loop_and_the_thread_give_the_same_answers(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = api.token("contributor")
    assert api.send("PUT", SET + V, owner, json=body(2)).status_code == 201
    assert auth.reads_on_loop(api.world.store)
    creating = _answers(api, owner)
    assert [code for code, _, _ in creating] == [200, 404, 400, 400]
    monkeypatch.setattr(auth, "reads_on_loop", lambda store: False)
    assert _answers(api, owner) == creating  # while the PUT is marked in progress
    api.world.settle()
    threaded = _answers(api, owner)
    monkeypatch.undo()
    assert _answers(api, owner) == threaded
    assert b'"Succeeded"' in threaded[0][1] and threaded != creating


@pytest.mark.parametrize("on_loop", [True, False])
def test_each_way_is_one_transaction_and_honours_a_revoke_at_once(
        api: Api, monkeypatch: pytest.MonkeyPatch, on_loop: bool) -> None:
    owner, reader = api.token("contributor"), api.token("reader")
    assert api.send("PUT", SET + V, owner, json=body(1)).status_code == 201
    api.world.settle()
    monkeypatch.setattr(auth, "reads_on_loop", lambda store: on_loop)
    assert api.send("GET", SET + V, reader).status_code == 200  # answer kept from here on
    begins: list[int] = []
    event.listen(api.world.store.engine, "begin", lambda conn: begins.append(1))
    assert api.send("GET", SET + V, reader).status_code == 200
    assert len(begins) == 1
    other = Store(make_engine(api.world.store.engine.url.render_as_string(
        hide_password=False)))
    try:
        assert tokens.revoke_token(other, reader.split("_")[1])
    finally:
        other.close()
    refused = api.send("GET", SET + V, reader)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_legacy_token_row_is_rekeyed_after_a_get_on_the_loop(api: Api) -> None:
    owner = api.token("contributor")
    assert api.send("PUT", SET + V, owner, json=body(1)).status_code == 201
    legacy = "sst_0badc0de_legacy-secret"
    with api.world.store.transaction() as tx:
        tx.conn.execute(insert(t.tokens).values(
            token_hash=hashlib.sha256(legacy.encode()).hexdigest(), token_id="0badc0de",
            role="reader", description="from an older version",
            created_at=api.world.clock.now(),
            expires_at=api.world.clock.now() + timedelta(days=1)))
    keyring = secrets.Keyring((("k1", secrets.new_key()),), secrets.new_key())
    api.world.store.cipher = keyring
    owner = api.token("contributor")  # keyed by the keyring from here on
    assert api.send("GET", SET + V, legacy).status_code == 200
    with api.world.store.transaction() as tx:
        stored = set(tx.conn.execute(select(t.tokens.c.token_hash)).scalars())
    assert keyring.digest(legacy) in stored
    assert hashlib.sha256(legacy.encode()).hexdigest() not in stored
    assert api.send("GET", SET + V, legacy).status_code == 200


def test_reads_stay_off_the_loop_unless_a_pooled_sqlite_connection_is_free(
        sqlite_store: Store, tmp_path: Path) -> None:
    assert auth.reads_on_loop(sqlite_store)
    pool = sqlite_store.engine.pool
    held = [sqlite_store.engine.connect() for _ in range(pool.size())]  # type: ignore[attr-defined]
    try:
        assert not auth.reads_on_loop(sqlite_store)  # a checkout could wait for a thread
    finally:
        for conn in held:
            conn.close()
    assert auth.reads_on_loop(sqlite_store)
    memory = Store(make_engine("sqlite://"))  # one connection shared by every thread
    try:
        assert not auth.reads_on_loop(memory)
    finally:
        memory.close()
    journal = Store(create_engine(f"sqlite:///{tmp_path}/journal.db"))  # readers wait there
    try:
        assert not auth.reads_on_loop(journal)
    finally:
        journal.close()
