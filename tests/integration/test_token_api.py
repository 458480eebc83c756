"""``/scaleset/tokens``: contributors create, list and revoke tokens over the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.clock import VirtualClock
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V
from tests.support import World

TOKENS = "/scaleset/tokens"


@pytest.fixture
def api(store: Store) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str],
                                        VirtualClock]]:
    world = World.create(store)
    reader = create_token(store, role=Role.READER, now=world.clock.now()).token
    writer = create_token(store, role=Role.CONTRIBUTOR, now=world.clock.now()).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield (c, {"Authorization": f"Bearer {writer}"},
               {"Authorization": f"Bearer {reader}"}, world.clock)


Api = tuple[TestClient, dict[str, str], dict[str, str], VirtualClock]


def test_a_created_token_works_once_and_its_secret_is_never_listed(api: Api) -> None:
    c, writer, _, _ = api
    r = c.post(TOKENS, json={"role": "reader", "name": "grafana"}, headers=writer)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["role"] == "reader" and created["name"] == "grafana"
    assert created["expiresAt"] is None
    assert r.headers["Cache-Control"] == "no-store"
    secret = created["token"]
    assert c.get(f"{RG}/virtualMachineScaleSets{V}",
                 headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    listed = c.get(TOKENS, headers=writer)
    assert listed.status_code == 200
    assert secret not in listed.text
    ids = {i["id"]: i for i in listed.json()["value"]}
    assert ids[created["id"]]["name"] == "grafana"
    assert all("token" not in i for i in ids.values())


def test_a_revoked_token_gets_401_and_revoking_again_is_404(api: Api) -> None:
    c, writer, _, _ = api
    created = c.post(TOKENS, json={"role": "contributor"}, headers=writer).json()
    as_new = {"Authorization": f"Bearer {created['token']}"}
    assert c.get(TOKENS, headers=as_new).status_code == 200

    r = c.delete(f"{TOKENS}/{created['id']}", headers=writer)
    assert r.status_code == 200, r.text
    r = c.get(TOKENS, headers=as_new)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    again = c.delete(f"{TOKENS}/{created['id']}", headers=writer)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "ResourceNotFound"


def test_a_token_past_its_expiry_gets_401(api: Api) -> None:
    c, writer, _, clock = api
    r = c.post(TOKENS, json={"role": "reader", "expiresIn": "PT1H"}, headers=writer)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["expiresAt"] == (clock.now() + timedelta(hours=1)).isoformat()
    as_new = {"Authorization": f"Bearer {created['token']}"}
    path = f"{RG}/virtualMachineScaleSets{V}"
    clock.advance(timedelta(minutes=59))
    assert c.get(path, headers=as_new).status_code == 200
    clock.advance(timedelta(minutes=1))
    r = c.get(path, headers=as_new)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_an_absolute_expiry_is_kept_and_listed(api: Api) -> None:
    c, writer, _, clock = api
    at = (clock.now() + timedelta(days=2)).isoformat()
    created = c.post(TOKENS, json={"role": "reader", "expiresAt": at}, headers=writer).json()
    listed = {i["id"]: i for i in c.get(TOKENS, headers=writer).json()["value"]}
    assert listed[created["id"]]["expiresAt"] == at


def test_only_contributors_may_manage_tokens(api: Api) -> None:
    c, _, reader, _ = api
    for method, path in [("POST", TOKENS), ("GET", TOKENS), ("DELETE", f"{TOKENS}/abcd0123")]:
        r = c.request(method, path, json={"role": "contributor"} if method == "POST" else None,
                      headers=reader)
        assert r.status_code == 403, (method, r.text)
        assert r.json()["error"]["code"] == "AuthorizationFailed"
        assert c.request(method, path).status_code == 401


@pytest.mark.parametrize(("body", "target"), [
    ({}, "role"),
    ({"role": "owner"}, "role"),
    ({"role": "reader", "name": "x" * 257}, "name"),
    ({"role": "reader", "name": ""}, "name"),
    ({"role": "reader", "surprise": 1}, "surprise"),
    ({"role": "reader", "expiresIn": "P1M"}, "expiresIn"),
    ({"role": "reader", "expiresIn": "PT0S"}, "expiresIn"),
    ({"role": "reader", "expiresIn": "P3651D"}, "expiresIn"),
    ({"role": "reader", "expiresIn": 10**20}, "expiresIn"),  # the stateful fuzz's 500
    ({"role": "reader", "expiresIn": "P99999999999999D"}, "expiresIn"),
    ({"role": "reader", "expiresAt": "2000-01-01T00:00:00Z"}, "expiresAt"),
    ({"role": "reader", "expiresAt": "2999-01-01T00:00:00Z"}, "expiresAt"),
    ({"role": "reader", "expiresAt": "not a time"}, "expiresAt"),
])
def test_bad_requests_are_400s_in_the_envelope_and_store_nothing(
        api: Api, body: dict[str, object], target: str) -> None:
    c, writer, _, _ = api
    before = c.get(TOKENS, headers=writer).json()["value"]
    r = c.post(TOKENS, json=body, headers=writer)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert target in (error.get("target") or "") + error["message"]
    assert c.get(TOKENS, headers=writer).json()["value"] == before


def test_both_expiries_at_once_are_refused(api: Api) -> None:
    c, writer, _, _ = api
    r = c.post(TOKENS, json={"role": "reader", "expiresIn": "PT1H",
                             "expiresAt": "2030-01-01T00:00:00Z"}, headers=writer)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "InvalidParameter"
