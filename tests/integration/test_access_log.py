"""The request log in process: a refused request (4xx) at INFO with its ARM code and role,
a 5xx at ERROR with its traceback (once), successes at DEBUG, never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.reconcile import views
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store, StoreError
from scaleset.telemetry.logs import JsonFormatter
from tests.integration.test_api import RG, V, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
ROUTE = ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
         "Microsoft.Compute/virtualMachineScaleSets/{name}")


@dataclass
class Logged:
    client: TestClient
    reader: str
    writer: str
    out: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        """Every line so far, each parsed (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def access(self) -> list[dict[str, Any]]:
        return [x for x in self.lines() if x["logger"] == "scaleset.api.access"]

    def text(self) -> str:
        return self.out.getvalue()


@pytest.fixture
def logged(sqlite_store: Store) -> Iterator[Logged]:
    """An app whose scaleset.* log lines go, as JSON, to a buffer (DEBUG and up)."""
    world = World.create(sqlite_store)
    reader = create_token(sqlite_store, role=Role.READER, now=world.clock.now()).token
    writer = create_token(sqlite_store, role=Role.CONTRIBUTOR, now=world.clock.now()).token
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("scaleset")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the buffer is the whole log
    context = ApiContext(store=sqlite_store, clock=world.clock, settings=world.settings)
    try:
        with TestClient(create_app(context), base_url="https://testserver",
                        raise_server_exceptions=False) as client:
            yield Logged(client, reader, writer, out)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_refused_request_is_an_info_line_with_its_code_path_and_role(logged: Logged) -> None:
    r = logged.client.get(f"{RG}/virtualMachineScaleSets/absent{V}&code=0.AXoA-oauth-code",
                          headers=as_(logged.reader))
    assert r.status_code == 404
    [line] = logged.access()
    assert line["level"] == "INFO"
    assert (line["method"], line["status"], line["error_code"], line["role"]) == (
        "GET", 404, r.json()["error"]["code"], "reader")
    assert line["path"] == f"{RG}/virtualMachineScaleSets/absent"  # no query string
    assert line["route"] == ROUTE
    assert "0.AXoA-oauth-code" not in logged.text() and "api-version" not in logged.text()


def test_a_forbidden_write_names_the_role_and_a_bad_token_is_never_written(
        logged: Logged) -> None:
    assert logged.client.post(f"{VMSS}/osRollingUpgrade{V}",
                              headers=as_(logged.reader)).status_code == 403
    unknown = "sst_0badc0de_this-token-is-not-known-here"
    assert logged.client.get(f"{VMSS}{V}", headers=as_(unknown)).status_code == 401
    forbidden, unauthenticated = logged.access()
    assert (forbidden["status"], forbidden["error_code"], forbidden["role"]) == (
        403, "AuthorizationFailed", "reader")
    assert (unauthenticated["status"], unauthenticated["level"]) == (401, "INFO")
    assert unauthenticated["error_code"] == "InvalidAuthenticationToken"
    assert "role" not in unauthenticated
    for secret in (unknown, logged.reader, logged.writer, "this-token-is-not-known"):
        assert secret not in logged.text()


def test_an_invalid_body_is_logged_by_the_field_never_by_its_secret_values(
        logged: Logged) -> None:
    sent = body(capacity=-1)
    r = logged.client.put(f"{VMSS}{V}", json=sent, headers=as_(logged.writer))
    assert r.status_code == 400
    [line] = logged.access()
    assert line["error_code"] == "InvalidParameter" and line["error_target"]
    profile = sent["properties"]["virtualMachineProfile"]
    for secret in (profile["osProfile"]["adminPassword"], profile["osProfile"]["customData"],
                   "do-not-echo"):
        assert secret not in logged.text()


def test_a_success_is_a_debug_line(logged: Logged) -> None:
    assert logged.client.get("/healthz").status_code == 200
    [line] = logged.access()
    assert (line["level"], line["status"], line["route"]) == ("DEBUG", 200, "/healthz")


def test_an_unhandled_error_is_one_error_line_with_the_traceback(
        logged: Logged, monkeypatch: pytest.MonkeyPatch) -> None:
    assert logged.client.put(f"{VMSS}{V}", json=body(), headers=as_(logged.writer)
                             ).status_code == 201

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the view broke")

    monkeypatch.setattr(views, "latest_rolling_upgrade", broken)
    r = logged.client.get(f"{VMSS}/rollingUpgrades/latest{V}", headers=as_(logged.reader))
    assert r.status_code == 500 and r.json()["error"]["code"] == "InternalServerError"
    errors = [x for x in logged.lines() if x["level"] == "ERROR"]
    assert len(errors) == 1  # one traceback for one failure
    [line] = errors
    assert (line["logger"], line["status"], line["role"]) == ("scaleset.api.access", 500,
                                                              "reader")
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: the view broke" in line["exception"]


def test_a_database_failure_is_a_503_logged_once_with_its_traceback(
        logged: Logged, monkeypatch: pytest.MonkeyPatch) -> None:
    assert logged.client.put(f"{VMSS}{V}", json=body(), headers=as_(logged.writer)
                             ).status_code == 201

    def unavailable(*_: object, **__: object) -> None:
        raise StoreError("connection refused by the database")

    monkeypatch.setattr(views, "os_upgrade_history", unavailable)
    r = logged.client.get(f"{VMSS}/osUpgradeHistory{V}", headers=as_(logged.reader))
    assert r.status_code == 503
    errors = [x for x in logged.lines() if x["level"] == "ERROR"]
    assert [(x["status"], x["error_code"]) for x in errors] == [(503, "ServiceUnavailable")]
    assert "StoreError: connection refused by the database" in errors[0]["exception"]


def test_requests_refused_before_routing_are_logged_and_counted(logged: Logged) -> None:
    assert logged.client.get("/no/such/route").status_code == 404
    [line] = logged.access()
    assert (line["status"], line["route"], line["level"]) == (404, "(unrouted)", "INFO")
