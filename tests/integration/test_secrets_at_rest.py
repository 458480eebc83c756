"""Secrets at rest: what the database holds is sealed; the API and the driver see what
they saw before (GET hides the secrets, the driver gets them in clear)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.drivers.base import InstanceSpec
from scaleset.security import authority, secrets
from scaleset.security.secrets import Keyring
from scaleset.store import tables as t
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

URL = f"{RG}/virtualMachineScaleSets/vmss1{V}"
PASSWORD, CUSTOM_DATA = "S3cret!pass", "ZWNobyBoaQ=="
PROTECTED = "do-not-echo"
SECRETS = (PASSWORD, CUSTOM_DATA, PROTECTED)


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.world = World.create(store)
        self.specs: list[InstanceSpec] = []
        create = self.world.driver.create_instance

        def recording(spec: InstanceSpec) -> None:
            self.specs.append(spec)
            create(spec)
        self.world.driver.create_instance = recording  # type: ignore[method-assign]
        context = ApiContext(store=store, clock=self.world.clock,
                             settings=self.world.settings, auth_required=False)
        self.client = TestClient(create_app(context), base_url="https://testserver")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring((("k1", secrets.new_key()),), secrets.new_key())


@pytest.fixture
def api(store: Store, keyring: Keyring) -> Iterator[Api]:
    store.cipher = keyring  # as serve opens it: open_store(url, cipher=keyring)
    made = Api(store)
    with made.client:
        yield made


def _raw_model(store: Store) -> dict[str, Any]:
    with store.transaction() as tx:
        model = tx.conn.execute(select(t.scale_sets.c.model)).scalar_one()
    assert isinstance(model, dict)
    return model


def _database_bytes(store: Store) -> bytes:
    """The SQLite file and its WAL as they lie on disk ('' for another backend)."""
    name = store.engine.url.database
    if store.engine.url.get_backend_name() != "sqlite" or not name:
        return b""
    return b"".join(Path(p).read_bytes() for p in (name, f"{name}-wal") if Path(p).exists())


def test_the_database_never_holds_the_three_secrets_in_clear(api: Api) -> None:
    r = api.client.put(URL, json=body(capacity=2))
    assert r.status_code == 201, r.text
    api.world.settle()
    raw = repr(_raw_model(api.store))
    on_disk = _database_bytes(api.store)
    for secret in SECRETS:
        assert secret not in raw
        assert secret.encode() not in on_disk
    assert "enc:v1:k1:" in raw
    # GET hides them, as before.
    got = api.client.get(URL).json()
    profile = got["properties"]["virtualMachineProfile"]
    assert "adminPassword" not in profile["osProfile"]
    assert "customData" not in profile["osProfile"]
    assert "protectedSettings" not in profile["extensionProfile"]["extensions"][0]["properties"]
    assert not any(s in repr(got) for s in SECRETS)


def test_the_driver_gets_the_secrets_in_clear(api: Api) -> None:
    assert api.client.put(URL, json=body(capacity=2)).status_code == 201
    api.world.settle()
    assert len(api.specs) == 2
    for spec in api.specs:
        assert spec.custom_data == CUSTOM_DATA
        assert base64.b64decode(spec.custom_data or "") == b"echo hi"
        assert dict(spec.extensions[0].protected_settings) == {"secret": PROTECTED}


def test_a_put_leaving_the_secrets_out_keeps_them(api: Api) -> None:
    assert api.client.put(URL, json=body(capacity=1)).status_code == 201
    api.world.settle()
    sent = api.client.get(URL).json()
    sent["sku"]["capacity"] = 2
    sent["tags"] = {"after": "put"}
    r = api.client.put(URL, json=sent)
    assert r.status_code == 200, r.text
    api.world.settle()
    with api.store.transaction() as tx:
        row = tx.get_scale_set(tx.scale_set_ids()[0])
    assert row is not None
    os_profile = row.model.properties.virtual_machine_profile.os_profile
    assert os_profile is not None
    assert (os_profile.admin_password, os_profile.custom_data) == (PASSWORD, CUSTOM_DATA)
    assert api.specs[-1].custom_data == CUSTOM_DATA
    assert dict(api.specs[-1].extensions[0].protected_settings) == {"secret": PROTECTED}
    assert not any(s in repr(_raw_model(api.store)) for s in SECRETS)


def test_a_row_written_in_clear_still_reads_and_is_sealed_at_its_next_write(
        store: Store, keyring: Keyring) -> None:
    plain = Api(store)  # no cipher: as an older version wrote it
    with plain.client:
        assert plain.client.put(URL, json=body(capacity=1)).status_code == 201
        plain.world.settle()
    assert PASSWORD in repr(_raw_model(store))
    store.cipher = keyring
    sealed = Api(store)
    with sealed.client:
        assert sealed.client.get(URL).status_code == 200
        r = sealed.client.patch(URL, json={"tags": {"sealed": "now"}})
        assert r.status_code == 200, r.text
    raw = repr(_raw_model(store))
    assert not any(s in raw for s in SECRETS) and "enc:v1:k1:" in raw


def test_a_value_from_another_key_is_refused_not_shown(api: Api) -> None:
    assert api.client.put(URL, json=body(capacity=1)).status_code == 201
    api.store.cipher = Keyring((("k2", secrets.new_key()),), secrets.new_key())
    r = api.client.get(URL)
    assert r.status_code >= 500
    assert not any(s in r.text for s in SECRETS)


def test_the_authoritys_signing_key_is_sealed(store: Store, keyring: Keyring) -> None:
    store.cipher = keyring
    identity = authority.server_identity(store, now=World.create(store).clock.now())
    with store.transaction() as tx:
        state = tx.conn.execute(select(t.resources.c.state).where(
            t.resources.c.id == authority.IDENTITY_ID)).scalar_one()
    assert "PRIVATE KEY" not in repr(state) and secrets.is_sealed(state["privateKey"])
    assert b"PRIVATE KEY" not in _database_bytes(store)
    assert authority._read_identity(store) == identity


def test_rotation_reseals_every_secret_and_the_old_key_no_longer_opens_them(
        api: Api, keyring: Keyring) -> None:
    assert api.client.put(URL, json=body(capacity=1)).status_code == 201
    authority.server_identity(api.store, now=api.world.clock.now())
    rotated = secrets.with_new_key(keyring)
    api.store.cipher = rotated
    done = secrets.reseal(api.store)
    assert (done.scale_sets, done.values, done.signing_key) == (1, 4, True)
    api.store.cipher = secrets.only_current(rotated)
    raw = repr(_raw_model(api.store))
    assert f"enc:v1:{rotated.current}:" in raw and "enc:v1:k1:" not in raw
    with api.store.transaction() as tx:
        row = tx.get_scale_set(tx.scale_set_ids()[0])
    assert row is not None and row.model.properties.virtual_machine_profile.os_profile \
        is not None
    assert row.model.properties.virtual_machine_profile.os_profile.admin_password == PASSWORD
    assert authority._read_identity(api.store) is not None


def test_a_keyring_that_cannot_open_the_store_is_refused_at_start(
        api: Api, keyring: Keyring) -> None:
    assert api.client.put(URL, json=body(capacity=1)).status_code == 201
    authority.server_identity(api.store, now=api.world.clock.now())
    secrets.check_opens(api.store)  # the right key: no complaint
    api.store.cipher = Keyring((("other", secrets.new_key()),), secrets.new_key())
    with pytest.raises(secrets.SecretsError, match="key 'k1', which is not in the keyring"):
        secrets.check_opens(api.store)
