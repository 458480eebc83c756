"""The server's authority in-process: service principals sign in with client credentials,
their access tokens drive the ARM API, and everything MSAL reads has Entra ID's shape."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.clock import VirtualClock
from scaleset.security import authority, principals
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V
from tests.support import World

BASE = "https://testserver"
PRINCIPALS = "/scaleset/servicePrincipals"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Api:
    def __init__(self, client: TestClient, writer: dict[str, str], clock: VirtualClock,
                 store: Store):
        self.c, self.writer, self.clock, self.store = client, writer, clock, store

    def principal(self, role: str = "contributor", name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"role": role}
        if name is not None:
            body["name"] = name
        r = self.c.post(PRINCIPALS, json=body, headers=self.writer)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def token(self, sp: dict[str, Any], *, tenant: str | None = None,
              scope: str = f"{BASE}/.default", secret: str | None = None) -> Any:
        return self.c.post(f"/{tenant or sp['tenant']}/oauth2/v2.0/token", headers=FORM, data={
            "grant_type": "client_credentials", "client_id": sp["appId"],
            "client_secret": secret if secret is not None else sp["password"],
            "scope": scope})


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    writer = create_token(store, role=Role.CONTRIBUTOR, now=world.clock.now()).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url=BASE) as c:
        yield Api(c, {"Authorization": f"Bearer {writer}"}, world.clock, store)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_principal_signs_in_and_its_token_lists_scale_sets(api: Api) -> None:
    sp = api.principal("reader", name="ci")
    assert set(sp) >= {"appId", "displayName", "password", "tenant"}
    assert sp["displayName"] == "ci" and sp["role"] == "reader"
    r = api.token(sp)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert r.headers["Cache-Control"] == "no-store"
    token = answer["access_token"]
    assert api.c.get(f"{RG}/virtualMachineScaleSets{V}", headers=bearer(token)).status_code \
        == 200
    # A reader's token may not write.
    put = api.c.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json={}, headers=bearer(token))
    assert put.status_code == 403, put.text


def test_the_token_says_who_and_for_what_and_is_signed_by_the_published_key(api: Api) -> None:
    sp = api.principal()
    token = api.token(sp).json()["access_token"]
    header = jwt.get_unverified_header(token)
    keys = api.c.get(f"/{sp['tenant']}/discovery/v2.0/keys").json()["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=BASE,
                        options={"verify_exp": False, "verify_iat": False,
                                 "verify_nbf": False})
    assert claims["tid"] == sp["tenant"] and claims["appid"] == sp["appId"]
    assert claims["azp"] == sp["appId"] and claims["oid"] == sp["objectId"]
    assert claims["roles"] == ["contributor"]
    assert claims["iss"] == f"{BASE}/{sp['tenant']}/v2.0"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]


def test_the_password_is_kept_only_as_a_slow_salted_hash(api: Api) -> None:
    sp = api.principal()
    with api.store.transaction() as tx:
        row = tx.get_resource(principals.principal_id(sp["appId"]))
    assert row is not None
    assert sp["password"] not in str(row.body) + str(row.state)
    assert str(row.state["secretHash"]).startswith("scrypt$16384$8$1$")
    listed = api.c.get(PRINCIPALS, headers=api.writer)
    assert sp["password"] not in listed.text
    assert [p["appId"] for p in listed.json()["value"]] == [sp["appId"]]


@pytest.mark.parametrize("tenant", ["organizations", "common", "adfs", "TENANT"])
def test_the_tenant_id_and_the_generic_tenants_all_issue_tokens(api: Api, tenant: str) -> None:
    sp = api.principal()
    r = api.token(sp, tenant=sp["tenant"].upper() if tenant == "TENANT" else tenant)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("scope", [f"{BASE}//.default", "https://management.azure.com/.default",
                                   "https://management.core.windows.net//.default"])
def test_scopes_for_this_server_or_azure_arm_give_a_token_for_this_server(api: Api,
                                                                       scope: str) -> None:
    sp = api.principal()
    r = api.token(sp, scope=scope)
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == BASE
    assert api.c.get(f"/subscriptions{_SUB_V}",
                     headers=bearer(r.json()["access_token"])).status_code == 200


_SUB_V = "?api-version=2022-12-01"


def test_the_v1_endpoint_takes_resource_and_answers_v1_strings(api: Api) -> None:
    sp = api.principal()
    r = api.c.post(f"/{sp['tenant']}/oauth2/token", headers=FORM, data={
        "grant_type": "client_credentials", "client_id": sp["appId"],
        "client_secret": sp["password"], "resource": f"{BASE}/"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["resource"] == f"{BASE}/" and answer["expires_in"] == "3600"
    assert int(answer["expires_on"]) - int(answer["not_before"]) == 3600


def test_client_secret_basic_is_accepted(api: Api) -> None:
    sp = api.principal()
    basic = base64.b64encode(f"{sp['appId']}:{sp['password']}".encode()).decode()
    r = api.c.post(f"/{sp['tenant']}/oauth2/v2.0/token",
                   headers={**FORM, "Authorization": f"Basic {basic}"},
                   data={"grant_type": "client_credentials", "scope": f"{BASE}/.default"})
    assert r.status_code == 200, r.text


def _aad_error(r: Any, status: int, error: str, code: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    return str(body["error_description"])


def test_a_wrong_secret_is_invalid_client_7000215(api: Api) -> None:
    sp = api.principal()
    text = _aad_error(api.token(sp, secret="not-the-password"), 401, "invalid_client", 7000215)
    assert sp["appId"] in text


def test_refusals_have_entra_ids_error_shape(api: Api) -> None:
    sp = api.principal()
    unknown = {**sp, "appId": "0b1f6a6e-8f0e-4c57-9a4c-2f1d5b7e9a10"}
    _aad_error(api.token(unknown), 400, "unauthorized_client", 700016)
    _aad_error(api.token(sp, tenant="contoso.onmicrosoft.com"), 400, "invalid_request", 90002)
    _aad_error(api.token(sp, scope="https://graph.microsoft.com/.default"), 400,
               "invalid_resource", 500011)
    _aad_error(api.token(sp, scope=BASE), 400, "invalid_scope", 1002012)
    r = api.c.post(f"/{sp['tenant']}/oauth2/v2.0/token", headers=FORM,
                   data={"grant_type": "password", "client_id": sp["appId"]})
    _aad_error(r, 400, "unsupported_grant_type", 70003)
    r = api.c.post(f"/{sp['tenant']}/oauth2/v2.0/token", headers=FORM,
                   data={"grant_type": "client_credentials", "scope": f"{BASE}/.default"})
    _aad_error(r, 400, "invalid_request", 900144)
    r = api.c.post(f"/{sp['tenant']}/oauth2/v2.0/token", json={"grant_type": "x"})
    _aad_error(r, 400, "invalid_request", 900144)
    r = api.c.post(f"/{sp['tenant']}/oauth2/v2.0/token", headers=FORM,
                   content=b"grant_type=client_credentials&scope=" + b"x" * 70000)
    _aad_error(r, 400, "invalid_request", 900144)


def test_an_expired_token_is_refused(api: Api) -> None:
    sp = api.principal()
    token = api.token(sp).json()["access_token"]
    url = f"{RG}/virtualMachineScaleSets{V}"
    api.clock.advance(timedelta(minutes=59))
    assert api.c.get(url, headers=bearer(token)).status_code == 200
    api.clock.advance(timedelta(minutes=1))
    r = api.c.get(url, headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_deleted_principal_is_refused_from_the_next_request(api: Api) -> None:
    sp = api.principal()
    token = api.token(sp).json()["access_token"]
    url = f"{RG}/virtualMachineScaleSets{V}"
    assert api.c.get(url, headers=bearer(token)).status_code == 200
    assert api.c.delete(f"{PRINCIPALS}/{sp['appId']}", headers=api.writer).status_code == 200
    assert api.c.get(url, headers=bearer(token)).status_code == 401
    _aad_error(api.token(sp), 400, "unauthorized_client", 700016)
    assert api.c.delete(f"{PRINCIPALS}/{sp['appId']}", headers=api.writer).status_code == 404


def test_a_token_for_another_audience_or_signed_by_another_key_is_refused(api: Api) -> None:
    sp = api.principal()
    token = api.token(sp).json()["access_token"]
    url = f"{RG}/virtualMachineScaleSets{V}"
    with TestClient(api.c.app, base_url="https://elsewhere:9443") as other:
        assert other.get(url, headers=bearer(token)).status_code == 401
    claims = jwt.decode(token, options={"verify_signature": False})
    from cryptography.hazmat.primitives.asymmetric import rsa
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = jwt.get_unverified_header(token)
    forged = jwt.encode(claims, forged_key, algorithm="RS256", headers={"kid": header["kid"]})
    assert api.c.get(url, headers=bearer(forged)).status_code == 401
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    assert api.c.get(url, headers=bearer(unsigned)).status_code == 401
    # Both slash forms of this server are its audience.
    slash = jwt.encode({**claims, "aud": f"{BASE}/"}, _private_key(api.store),
                       algorithm="RS256", headers={"kid": header["kid"]})
    assert api.c.get(url, headers=bearer(slash)).status_code == 200


def _private_key(store: Store) -> str:
    with store.transaction() as tx:
        row = tx.get_resource(authority.IDENTITY_ID)
    assert row is not None
    return str(row.state["privateKey"])


def test_principals_need_a_contributor_and_readers_cannot_mint_them(api: Api) -> None:
    reader = create_token(api.store, role=Role.READER, now=api.clock.now()).token
    r = api.c.post(PRINCIPALS, json={"role": "contributor"}, headers=bearer(reader))
    assert r.status_code == 403
    assert api.c.post(PRINCIPALS, json={"role": "contributor"}).status_code == 401
    bad = api.c.post(PRINCIPALS, json={"role": "owner"}, headers=api.writer)
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "role"
    long = api.c.post(PRINCIPALS, json={"role": "reader", "name": "x" * 121},
                      headers=api.writer)
    assert long.status_code == 400 and long.json()["error"]["target"] == "name"


def test_openid_configuration_points_at_this_server(api: Api) -> None:
    sp = api.principal()
    tenant = sp["tenant"]
    v2 = api.c.get("/organizations/v2.0/.well-known/openid-configuration").json()
    assert v2["token_endpoint"] == f"{BASE}/organizations/oauth2/v2.0/token"
    assert v2["issuer"] == f"{BASE}/{tenant}/v2.0"
    assert v2["jwks_uri"] == f"{BASE}/organizations/discovery/v2.0/keys"
    assert "authorization_endpoint" in v2  # MSAL reads it unconditionally
    adfs = api.c.get("/adfs/.well-known/openid-configuration").json()
    assert adfs["token_endpoint"] == f"{BASE}/adfs/oauth2/token"
    unknown = api.c.get("/contoso/v2.0/.well-known/openid-configuration")
    _aad_error(unknown, 400, "invalid_tenant", 90002)


def test_instance_discovery_knows_this_host_only(api: Api) -> None:
    tenant = api.principal()["tenant"]
    ok = api.c.get("/common/discovery/instance", params={
        "api-version": "1.1",
        "authorization_endpoint": f"{BASE}/{tenant}/oauth2/v2.0/authorize"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["tenant_discovery_endpoint"] == \
        f"{BASE}/{tenant}/v2.0/.well-known/openid-configuration"
    other = api.c.get("/common/discovery/instance", params={
        "api-version": "1.1",
        "authorization_endpoint": "https://login.example.com/x/oauth2/v2.0/authorize"})
    _aad_error(other, 400, "invalid_instance", 50049)


def test_two_replicas_on_one_database_share_tenant_and_key(store: Store) -> None:
    world = World.create(store)
    now = world.clock.now()
    first = authority.server_identity(store, now=now)
    again = authority.server_identity(store, now=now + timedelta(days=1))
    assert (first.tenant_id, first.key_id, first.public_pem) == \
        (again.tenant_id, again.key_id, again.public_pem)
    issued = principals.create_principal(store, role="reader", name=None, now=now)
    grant = authority.issue_token(
        store, tenant="organizations", client_id=issued.principal.app_id,
        client_secret=issued.password, scope=f"{BASE}/.default", resource=None,
        resource_manager=BASE, issuer_base=BASE, now=now)
    caller = authority.verify_access_token(store, grant.access_token, resource_manager=BASE,
                                           now=now)
    assert caller is not None and caller.role is Role.READER
    assert issued.principal.display_name.startswith("scaleset-sp-")
