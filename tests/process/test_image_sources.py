"""Publishing an image from a URL: downloaded, checked like a path, the signature not kept."""

from __future__ import annotations

import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process.fleet import VERSIONS, WEBAPP, Fleet, wait_for


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path/www``; its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    with tarfile.open(root / "webapp-1.1.0.tar.gz", "w:gz") as archive:
        archive.add(WEBAPP / "1.1.0", arcname="webapp-1.1.0")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            """No request log in the test output."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_version_published_from_a_url_runs_and_keeps_no_signature(
        fleet: Fleet, file_server: str) -> None:
    uri = f"{file_server}/webapp-1.1.0.tar.gz?se=2099-01-01T00:00:00Z&sig=secret"
    published = fleet.call("PUT", f"{VERSIONS}/1.1.0", {
        "location": "westus", "properties": {"source": {"uri": uri}}})
    props = published["properties"]
    assert props["artifact"]["digest"].startswith("sha256:")
    assert props["source"] == {"uri": f"{file_server}/webapp-1.1.0.tar.gz"}
    assert "secret" not in str(fleet.call("GET", f"{VERSIONS}/1.1.0"))
    # The same files from a path are the same artifact.
    again = fleet.call("PUT", f"{VERSIONS}/1.1.0", {
        "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.1.0")}}})
    assert again["properties"]["artifact"]["digest"] == props["artifact"]["digest"]

    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=1)
    wait_for(lambda: fleet.all_healthy("web", 1), what="an instance from the downloaded image")
    assert "webapp 1.1.0" in fleet.page(fleet.instances("web")[0])


def test_a_url_that_does_not_answer_200_is_refused_and_stores_nothing(
        fleet: Fleet, file_server: str) -> None:
    stored = sorted(p.name for p in (fleet.data_dir / "images" / "sha256").iterdir())
    response = fleet.client.put(f"{VERSIONS}/1.1.0", params={"api-version": "2026-04-01"},
                                json={"location": "westus", "properties": {
                                    "source": {"uri": f"{file_server}/missing.tar.gz"}}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["target"] == "properties.source.uri" and "failed" in error["message"]
    assert "404" not in error["message"]  # the remote's answer is the server log's, not ours
    assert sorted(p.name for p in (fleet.data_dir / "images" / "sha256").iterdir()) == stored
    assert list((fleet.data_dir / "images" / ".tmp").iterdir()) == []
    assert fleet.call("GET", VERSIONS) == []


def test_a_source_with_both_path_and_uri_is_refused(fleet: Fleet) -> None:
    response = fleet.client.put(f"{VERSIONS}/1.1.0", params={"api-version": "2026-04-01"},
                                json={"location": "westus", "properties": {"source": {
                                    "path": str(WEBAPP / "1.1.0"), "uri": "file:///x"}}})
    assert response.status_code == 400
    assert response.json()["error"]["target"] == "properties.source"
