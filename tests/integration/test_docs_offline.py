"""``/docs`` and ``/redoc`` render on a closed network: every asset comes from this server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.clock import SystemClock
from scaleset.store.repository import Store


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[TestClient]:
    context = ApiContext(store=sqlite_store, clock=SystemClock())  # tokens required
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_nothing_from_another_host(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = _references(r.text)
    assert "/openapi.json" in refs
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "fonts.googleapis" not in r.text and "cdn." not in r.text
    for ref in refs:
        asset = client.get(ref)  # without a token, as a browser asks
        assert asset.status_code == 200, ref
        assert len(asset.content) > 100, ref


def test_the_bundle_is_swagger_ui_5_which_renders_openapi_3_1(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert "SwaggerUIBundle" in bundle.text[:2000]
    versions = set(re.findall(r'"(5\.\d+\.\d+)"', bundle.text))
    assert versions, "Swagger UI 4 cannot render an OpenAPI 3.1 document"


def test_the_api_itself_still_needs_a_token(client: TestClient) -> None:
    r = client.get("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
                   "virtualMachineScaleSets?api-version=2026-04-01")
    assert r.status_code == 401
