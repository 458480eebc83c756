"""The dashboard's sign-in, session cookie and CSRF rules, without a browser (in process).

A browser signed in at ``/ui/sign-in`` holds the token in an HttpOnly, SameSite=Strict
cookie (Secure over TLS). The cookie reads the API; a write with it also needs the
``X-Scaleset-Csrf`` value the page was rendered with, and a reader's write is refused
whatever it sends. Every ``/ui/`` response carries a CSP that allows nothing but this
server and no inline script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.security.tokens import Role, create_token, revoke_token
from scaleset.store.repository import Store
from scaleset.ui import sessions
from tests.support import World

SET = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.Compute/virtualMachineScaleSets/vmss1")
V = {"api-version": "2024-07-01"}
PAGE = "/ui/scale-sets/00000000-0000-0000-0000-000000000001/rg/vmss1"
STATIC = Path(__file__).resolve().parents[2] / "src" / "scaleset" / "ui" / "static"


@dataclass
class Dashboard:
    world: World
    store: Store
    app_context: ApiContext
    reader: str
    contributor: str

    def client(self, base_url: str = "https://testserver") -> TestClient:
        return TestClient(create_app(self.app_context), base_url=base_url,
                          follow_redirects=False)


@pytest.fixture
def dashboard(sqlite_store: Store) -> Iterator[Dashboard]:
    store = sqlite_store
    world = World.create(store)
    world.add_scale_set("vmss1", capacity=3, automatic=False)
    world.settle()
    world.publish("1.1.0")  # something for a rolling upgrade to do
    now = world.clock.now()
    reader = create_token(store, role=Role.READER, now=now).token
    contributor = create_token(store, role=Role.CONTRIBUTOR, now=now).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    yield Dashboard(world, store, context, reader, contributor)


def sign_in(client: TestClient, token: str, **extra: str) -> str:
    """Sign in through the form; the CSRF value the page then carries."""
    r = client.post("/ui/sign-in", data={"token": token, **extra})
    assert r.status_code == 303, r.text
    page = client.get(PAGE)
    assert page.status_code == 200
    found = re.search(r'<meta name="scaleset-csrf" content="([0-9a-f]+)">', page.text)
    assert found, page.text[:500]
    return found.group(1)


def set_cookie(response: httpx.Response) -> str:
    return "; ".join(v for k, v in response.headers.multi_items() if k.lower() == "set-cookie")


def test_a_page_without_a_session_sends_the_user_to_sign_in_and_back_afterwards(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        r = client.get(PAGE)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/ui/sign-in?next=%2Fui%2Fscale-sets%2F")
        form = client.get(r.headers["location"])
        assert form.status_code == 200
        assert '<label for="token">Token</label>' in form.text
        assert f'value="{PAGE}"' in form.text  # the form comes back here
        signed = client.post("/ui/sign-in", data={"token": dashboard.reader, "next": PAGE})
        assert signed.status_code == 303 and signed.headers["location"] == PAGE
        assert client.get(PAGE).status_code == 200


def test_the_session_cookie_is_httponly_samesite_strict_and_secure_over_tls(
        dashboard: Dashboard) -> None:
    with dashboard.client("https://testserver") as client:
        cookie = set_cookie(client.post("/ui/sign-in", data={"token": dashboard.reader}))
    assert cookie.startswith(f"{sessions.COOKIE}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "secure", "path=/"} <= attributes
    with dashboard.client("http://testserver") as client:
        plain = set_cookie(client.post("/ui/sign-in", data={"token": dashboard.reader}))
    assert "httponly" in plain.lower() and "samesite=strict" in plain.lower()
    assert "secure" not in plain.lower()  # a Secure cookie would never come back over http


def test_an_unknown_token_is_refused_at_sign_in_and_sets_no_cookie(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        r = client.post("/ui/sign-in", data={"token": "sst_00000000_not-a-token"})
        assert r.status_code == 401
        assert "not known to this server" in r.text
        assert set_cookie(r) == ""
        assert client.post("/ui/sign-in", data={"token": ""}).status_code == 400
        assert client.post("/ui/sign-in", data={"token": "x" * 5000}).status_code == 400
        assert client.post("/ui/sign-in", content=b"token=" + b"x" * 9000, headers={
            "content-type": "application/x-www-form-urlencoded"}).status_code == 413


def test_a_sign_in_posted_from_another_site_is_refused(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        r = client.post("/ui/sign-in", data={"token": dashboard.contributor},
                        headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and set_cookie(r) == ""


def test_sign_in_only_returns_to_a_dashboard_page_of_this_server(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        for target in ("//evil.example/ui/", "https://evil.example/", "/subscriptions",
                       "/ui/\\evil"):
            r = client.post("/ui/sign-in", data={"token": dashboard.reader, "next": target})
            assert r.headers["location"] == "/ui/", target


def test_the_cookie_reads_the_api_but_a_write_also_needs_the_pages_csrf_value(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        csrf = sign_in(client, dashboard.contributor)
        assert client.get(SET, params=V).status_code == 200
        assert client.get(f"{SET}/rollout", params=V).json()["run"] is None

        r = client.post(f"{SET}/osRollingUpgrade", params=V)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "InvalidCsrfToken"
        assert sessions.CSRF_HEADER in r.json()["error"]["message"]
        r = client.post(f"{SET}/osRollingUpgrade", params=V,
                        headers={sessions.CSRF_HEADER: "0" * 64})
        assert r.status_code == 403
        assert client.get(f"{SET}/rollout", params=V).json()["run"] is None  # nothing started

        r = client.post(f"{SET}/osRollingUpgrade", params=V, headers={sessions.CSRF_HEADER: csrf})
        assert r.status_code == 202, r.text
        run = client.get(f"{SET}/rollout", params=V).json()["run"]
        assert run is not None and run["targetImageVersion"] == "1.1.0"


def test_the_csrf_value_of_one_token_does_not_pass_with_another(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        reader_csrf = sign_in(client, dashboard.reader)
    with dashboard.client() as client:
        sign_in(client, dashboard.contributor)
        r = client.post(f"{SET}/osRollingUpgrade", params=V,
                        headers={sessions.CSRF_HEADER: reader_csrf})
        assert r.status_code == 403 and r.json()["error"]["code"] == "InvalidCsrfToken"


def test_a_reader_sees_no_enabled_action_and_the_api_refuses_its_write(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        csrf = sign_in(client, dashboard.reader)
        page = client.get(PAGE).text
        assert 'data-can-act="false"' in page
        for button in ("action-start", "action-cancel", "action-approve"):
            tag = re.search(rf'<button [^>]*id="{button}"[^>]*>', page)
            assert tag and "disabled" in tag.group(0), button
        assert "reader token" in page
        assert client.get(f"{SET}/rollout", params=V).status_code == 200
        r = client.post(f"{SET}/osRollingUpgrade", params=V, headers={sessions.CSRF_HEADER: csrf})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "AuthorizationFailed"
        assert "reader" in r.json()["error"]["message"]


def test_a_bearer_header_needs_no_csrf_value_and_wins_over_the_cookie(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        sign_in(client, dashboard.reader)  # a reader's cookie...
        r = client.post(f"{SET}/osRollingUpgrade", params=V,  # ...a contributor's header
                        headers={"Authorization": f"Bearer {dashboard.contributor}"})
        assert r.status_code == 202, r.text


def test_sign_out_clears_the_cookie_and_only_from_the_page(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        csrf = sign_in(client, dashboard.reader)
        refused = client.post("/ui/sign-out", data={"csrf": "forged"})
        assert refused.status_code == 403
        assert client.get(PAGE).status_code == 200  # still signed in
        r = client.post("/ui/sign-out", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/ui/sign-in"
        cleared = set_cookie(r).lower()
        assert cleared.startswith(f"{sessions.COOKIE}=") and "max-age=0" in cleared
        assert client.get(PAGE).status_code == 303
        assert client.get(SET, params=V).status_code == 401


def test_a_revoked_token_ends_its_session_at_the_next_request(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        sign_in(client, dashboard.reader)
        token_id = sessions.token_id(dashboard.reader)
        assert token_id is not None and revoke_token(dashboard.store, token_id)
        assert client.get(PAGE).status_code == 303
        assert client.get(SET, params=V).status_code == 401


def test_every_dashboard_response_carries_a_strict_csp_and_no_inline_script(
        dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        answers = [client.get("/ui/sign-in")]
        sign_in(client, dashboard.reader)
        answers += [client.get(p) for p in ("/ui/", PAGE, "/ui/images")]
        answers += [client.get(f"/ui/static/{f.name}") for f in STATIC.iterdir()]
    for r in answers:
        assert r.status_code == 200, r.url
        policy = r.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.headers["content-type"].startswith("text/html"):
            assert r.headers["cache-control"] == "no-store"
            scripts = re.findall(r"<script([^>]*)>", r.text)
            assert all('src="/ui/static/' in attrs for attrs in scripts), scripts
            assert " style=" not in r.text  # no inline style either: the CSP would block it
            assert not re.search(r"\son[a-z]+=", r.text)  # no inline event handlers
        # Nothing names another origin (the SVG namespace is a name, never fetched).
        text = r.text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://", text), (r.url, re.findall(r"https?://\S+", text))


def test_static_files_are_the_packages_own_only(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        assert client.get("/ui/static/common.js").headers["content-type"].startswith(
            "text/javascript")
        for name in ("..%2Fpages.py", "pages.py", "missing.js", "%2Fetc%2Fpasswd", ".hidden.js"):
            assert client.get(f"/ui/static/{name}").status_code == 404, name
