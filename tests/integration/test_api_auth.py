"""Every ARM route needs a bearer token; readers may only read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World


@pytest.fixture
def client(store: Store) -> Iterator[tuple[TestClient, str, str]]:
    world = World.create(store)
    reader = create_token(store, role=Role.READER, now=world.clock.now()).token
    writer = create_token(store, role=Role.CONTRIBUTOR, now=world.clock.now()).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c, reader, writer


def test_no_token_is_a_401_in_the_envelope(client: tuple[TestClient, str, str]) -> None:
    c, _, _ = client
    r = c.get(f"{RG}/virtualMachineScaleSets{V}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AuthenticationFailed"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = c.get(f"{RG}/virtualMachineScaleSets{V}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_reader_may_read_but_not_write(client: tuple[TestClient, str, str]) -> None:
    c, reader, writer = client
    as_reader = {"Authorization": f"Bearer {reader}"}
    as_writer = {"Authorization": f"Bearer {writer}"}
    r = c.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(), headers=as_reader)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "AuthorizationFailed"
    assert c.get(f"{RG}/virtualMachineScaleSets/vmss1{V}", headers=as_writer).status_code == 404
    assert c.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(),
                 headers=as_writer).status_code == 201
    assert c.get(f"{RG}/virtualMachineScaleSets/vmss1{V}", headers=as_reader).status_code == 200
    r = c.post(f"{RG}/virtualMachineScaleSets/vmss1/osRollingUpgrade{V}", headers=as_reader)
    assert r.status_code == 403


def test_health_and_openapi_need_no_token(client: tuple[TestClient, str, str]) -> None:
    c, _, _ = client
    assert c.get("/healthz").json()["status"] == "ok"
    spec = c.get("/openapi.json").json()
    assert any("osRollingUpgrade" in path for path in spec["paths"])
    for methods in spec["paths"].values():  # errors are documented as they are sent
        for operation in methods.values():
            assert "422" not in operation["responses"]
    start = next(v for k, v in spec["paths"].items() if k.endswith("/osRollingUpgrade"))
    assert {"Azure-AsyncOperation", "Location", "Retry-After"} <= set(
        start["post"]["responses"]["202"]["headers"])
