"""A reader token runs no POST action (ARM's Reader role has no ``*/action``), every POST
route enumerated from the app so that a new one cannot be missed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from scaleset.api import versions
from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store
from tests.integration.test_api import RG, SUB, V, body
from tests.support import World

SIGN_IN = {"/{tenant}/oauth2/v2.0/token", "/{tenant}/oauth2/token",
           "/ui/sign-in", "/ui/sign-out"}
"""The sign-in itself (client credentials in the body, no bearer token to have a role); the
dashboard's sign-in and sign-out forms likewise (tests/integration/test_dashboard_session.py)."""
CALENDARS = (versions.COMPUTE[-1], versions.GALLERY[-1], versions.NETWORK[-1],
             versions.RESOURCES[-1], versions.SERVICE_FABRIC[-1], versions.SUBSCRIPTIONS[-1])


@pytest.fixture(scope="module")
def app_and_tokens(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    from scaleset.store.database import make_engine, migrate
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('reader')}/scaleset.db")
    migrate(engine)
    store = Store(engine)
    world = World.create(store)
    reader = create_token(store, role=Role.READER, now=world.clock.now()).token
    writer = create_token(store, role=Role.CONTRIBUTOR, now=world.clock.now()).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    app = create_app(context)
    with TestClient(app, base_url="https://testserver") as c:
        c.app_state["app"] = app
        as_writer = {"Authorization": f"Bearer {writer}"}
        assert c.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(),
                     headers=as_writer).status_code == 201
        yield c, {"Authorization": f"Bearer {reader}"}, as_writer
    store.close()


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, through included routers (FastAPI 0.165 keeps them as one entry
    holding the ``original_router``)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)


def _post_paths(client: TestClient) -> list[str]:
    """The POST routes, from the app's routing table and from its OpenAPI document."""
    app = client.app_state["app"]
    routed = {route.path for route in _routes(app.routes) if "POST" in (route.methods or ())}
    documented = {path for path, methods in client.get("/openapi.json").json()["paths"].items()
                  if "post" in methods}
    return sorted(routed | documented)


def _concrete(path: str) -> str:
    """The route's path with its variables filled in (the scale set that exists)."""
    values = {"subscription": SUB, "subscription_id": SUB, "resource_group": "rg1",
              "resourceGroupName": "rg1", "name": "vmss1", "instance_id": "0"}
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "x"), path)


def test_the_post_routes_are_the_ones_audited(
        app_and_tokens: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    """The sign-in routes are the only POSTs without a role; every other is enumerated
    by the next test. More than a handful: a routing change that hid them would fail."""
    client, _, _ = app_and_tokens
    paths = _post_paths(client)
    assert SIGN_IN <= set(paths)
    assert len(set(paths) - SIGN_IN) >= 20
    assert any(p.endswith("/retrieveBootDiagnosticsData") for p in paths)


def test_a_reader_gets_403_authorization_failed_on_every_post_action(
        app_and_tokens: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, as_reader, as_writer = app_and_tokens
    refused: dict[str, int] = {}
    for path in _post_paths(client):
        if path in SIGN_IN:
            continue
        url = _concrete(path)
        answers = []
        for version in CALENDARS:  # one of them is the route's provider's
            r = client.post(f"{url}?api-version={version}", json={}, headers=as_reader)
            answers.append((r.status_code, r.json().get("error", {}).get("code")))
        assert all(status >= 400 for status, _ in answers), (path, answers)
        assert (403, "AuthorizationFailed") in answers, (path, answers)
        # The refusal is the role's: a contributor's same request is not refused so.
        for version in CALENDARS:
            r = client.post(f"{url}?api-version={version}", json={}, headers=as_writer)
            assert r.status_code != 403, (path, version, r.text)
        refused[path] = 403
    assert len(refused) >= 20
    boot = next(p for p in refused if p.endswith("/retrieveBootDiagnosticsData"))
    assert refused[boot] == 403


def test_a_reader_reads_the_scale_set_but_not_its_boot_diagnostics(
        app_and_tokens: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, as_reader, as_writer = app_and_tokens
    vm = f"{RG}/virtualMachineScaleSets/vmss1/virtualMachines/0"
    assert client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}",
                      headers=as_reader).status_code == 200
    r = client.post(f"{vm}/retrieveBootDiagnosticsData{V}", headers=as_writer)
    assert r.status_code in (200, 404), r.text  # 404 until the instance exists
    r = client.post(f"{vm}/retrieveBootDiagnosticsData{V}", headers=as_reader)
    assert r.status_code == 403
    assert "contributor" in r.json()["error"]["message"]
    # Nor can a reader read the log at the URI the action would have handed out.
    r = client.get(f"{vm}/bootDiagnostics/serialConsoleLog{V}", headers=as_reader)
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
    r = client.get(f"{vm}/bootDiagnostics/serialConsoleLog{V}", headers=as_writer)
    assert r.status_code in (200, 404), r.text
