"""Issue 12 item 5: no server-side reach-through, and image archives bounded while read.

Through the API (publishing a platform image version): ``source.path`` only under
the operator's roots and never the data directory, with one message whether or
not the path exists; ``source.uri`` refused for loopback and private addresses
(also behind a redirect) with "refused", and every other problem one "failed"
that does not tell an open port from a closed one; archives too large, expanding
too far or holding too many entries refused with nothing left on disk. The
redirect loop and address pinning are driven through an httpx MockTransport.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import socket
import ssl
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.artifacts import ArtifactStore, SourceRules, addresses, fetch
from scaleset.clock import SystemClock
from scaleset.drivers.base import ExtensionSpec
from scaleset.drivers.process import extensions
from scaleset.model.instance import ExtensionStatus
from scaleset.reconcile.settings import Limits, ShellSettings, SourcePolicy
from scaleset.security import tls
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp" / "1.0.0"
SUB = "00000000-0000-0000-0000-000000000001"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = {"api-version": "2026-04-01"}
SMALL = Limits(max_image_archive_bytes=64 * 1024, max_image_expanded_bytes=256 * 1024,
               max_image_files=20)


@dataclass
class Api:
    client: TestClient
    data: Path
    images: Path

    def publish(self, source: dict[str, str], version: str = "1.0.0") -> httpx.Response:
        response: httpx.Response = self.client.put(
            f"{VERSIONS}/{version}", params=COMPUTE,
            json={"location": "westus", "properties": {"source": source}})
        return response

    def stored(self) -> list[str]:
        """What the store holds: artifacts and anything left in its scratch space."""
        return sorted(str(p.relative_to(self.data)) for p in
                      [*(self.data / "images" / "sha256").iterdir(),
                       *(self.data / "images" / ".tmp").iterdir()])


@contextmanager
def _api(tmp_path: Path, *, roots: tuple[Path, ...], allow_private: bool = False,
         limits: Limits = SMALL) -> Iterator[Api]:
    engine = make_engine(f"sqlite:///{tmp_path}/scaleset.db")
    migrate(engine)
    data = tmp_path / "data"
    artifacts = ArtifactStore(data / "images", data_dir=data)
    settings = ShellSettings(sources=SourcePolicy(roots=roots, allow_private=allow_private),
                             limits=limits)
    context = ApiContext(store=Store(engine), clock=SystemClock(), auth_required=False,
                         artifacts=artifacts, settings=settings)
    images = tmp_path / "sources"
    images.mkdir()
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(client, data, images)
    engine.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """Sources allowed under ``tmp_path/sources``; the data directory is ``tmp_path/data``."""
    with _api(tmp_path, roots=(tmp_path / "sources",)) as api:
        yield api


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _image(directory: Path, files: dict[str, bytes] | None = None) -> Path:
    directory.mkdir(parents=True)
    (directory / "image.json").write_text('{"osType": "Linux", "entrypoint": ["true"]}')
    for name, content in (files or {}).items():
        (directory / name).write_bytes(content)
    return directory


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in {"image.json": b'{"osType": "Linux", "entrypoint": ["true"]}',
                              **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


# -- source.path ----------------------------------------------------------------

def test_a_path_under_an_allowed_root_is_published(api: Api) -> None:
    source = _image(api.images / "app")
    response = api.publish({"path": str(source)})
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["artifact"]["digest"].startswith("sha256:")


def test_a_path_outside_the_roots_is_refused_alike_whether_or_not_it_exists(
        api: Api) -> None:
    messages = []
    for path in ("/etc", "/etc/passwd", "/etc/no-such-entry-here", "/nonexistent/dir",
                 str(WEBAPP)):
        error = _error(api.publish({"path": path}))
        assert error["code"] == "InvalidParameter"
        assert error["target"] == "properties.source.path"
        assert "--image-source-root" in error["message"]
        assert str(api.images) in error["message"]  # the allowed roots are named
        messages.append(error["message"].replace(path, "<path>"))
    assert len(set(messages)) == 1, messages  # nothing says which paths exist
    assert api.stored() == []


def test_no_root_given_refuses_every_server_path(tmp_path: Path) -> None:
    with _api(tmp_path, roots=()) as api:
        error = _error(api.publish({"path": str(WEBAPP)}))
        assert "none: serve was started without --image-source-root" in error["message"]


def test_dot_dot_and_symlinks_are_resolved_before_the_roots_are_checked(
        api: Api, tmp_path: Path) -> None:
    outside = _image(tmp_path / "outside")
    (api.images / "link").symlink_to(outside)
    for path in (api.images / ".." / "outside", api.images / "link"):
        error = _error(api.publish({"path": str(path)}))
        assert "refused" in error["message"] and "--image-source-root" in error["message"]
    assert api.stored() == []


def test_a_symlink_inside_a_source_directory_may_not_leave_it(api: Api) -> None:
    source = _image(api.images / "app")
    (source / "passwd").symlink_to("/etc/passwd")
    (source / "up").symlink_to("../../../..")
    error = _error(api.publish({"path": str(source)}))
    assert error["target"] == "properties.source.path"
    assert "outside the image" in error["message"]
    assert api.stored() == []


def test_the_data_directory_is_never_a_source_even_under_a_root(tmp_path: Path) -> None:
    # The root holds the data directory: the root itself (which contains it), the data
    # directory and anything inside it are refused; a sibling is not.
    with _api(tmp_path, roots=(tmp_path,)) as api:
        first = api.publish({"path": str(_image(api.images / "app"))})
        assert first.status_code == 201, first.text
        digest = first.json()["properties"]["artifact"]["digest"].removeprefix("sha256:")
        for path in (tmp_path, api.data, api.data / "images",
                     api.data / "images" / "sha256" / digest):
            error = _error(api.publish({"path": str(path)}, version="2.0.0"))
            assert "data directory" in error["message"], path
        uri = _error(api.publish({"uri": f"file://{api.data}/images"}, version="2.0.0"))
        assert uri["target"] == "properties.source.uri"
        assert "data directory" in uri["message"]


# -- source.uri ------------------------------------------------------------------

@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1: ``/ok.tar.gz``, ``/missing`` (404), ``/boom`` (500); its
    base URL and the paths it was asked for."""
    archive = _tarball(tmp_path / "ok.tar.gz", {}).read_bytes()
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status, body = {"/ok.tar.gz": (200, archive),
                            "/missing": (404, b"secret body 404")}.get(
                self.path, (500, b"secret body 500"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_loopback_url_is_refused_without_being_fetched(
        api: Api, http_server: tuple[str, list[str]]) -> None:
    base, asked = http_server
    messages = []
    for uri in (f"{base}/ok.tar.gz", f"http://127.0.0.1:{_closed_port()}/ok.tar.gz",
                "http://[::1]:9/ok.tar.gz", "http://169.254.169.254/latest/meta-data",
                "http://localhost:1/x.tar.gz"):
        error = _error(api.publish({"uri": uri}))
        assert error["target"] == "properties.source.uri"
        assert "was refused" in error["message"] and "--allow-private-sources" in error["message"]
        messages.append(re.sub(r"https?://\S+?'", "<uri>'", error["message"]))
    assert asked == []  # nothing was sent
    # An open and a closed loopback port read the same.
    assert messages[0] == messages[1]
    assert api.stored() == []


def test_with_private_sources_allowed_every_failure_reads_the_same(
        tmp_path: Path, http_server: tuple[str, list[str]]) -> None:
    base, _asked = http_server
    with _api(tmp_path, roots=(), allow_private=True) as api:
        ok = api.publish({"uri": f"{base}/ok.tar.gz"})
        assert ok.status_code == 201, ok.text
        messages = set()
        for uri in (f"{base}/missing", f"{base}/boom",
                    f"http://127.0.0.1:{_closed_port()}/missing"):
            error = _error(api.publish({"uri": uri}, version="2.0.0"))
            message = error["message"].replace(uri, "<uri>")  # its port may read "404"
            assert "failed" in message
            assert not re.search(r"404|500|secret body|[Cc]onnection|refused", message)
            messages.add(message)
        assert len(messages) == 1, messages
        assert [p for p in api.stored() if ".tmp" in p] == []


PUBLIC = addresses.parse("93.184.216.34")
INTERNAL = addresses.parse("10.0.0.5")


def _resolver(table: dict[str, list[Any]]) -> fetch.Resolver:
    def resolve(host: str, _port: int) -> list[addresses.IPAddress]:
        return table[host] if host in table else fetch.resolve(host, _port)
    return resolve


def test_a_redirect_from_an_allowed_url_to_loopback_or_a_private_name_is_refused() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["host"]))
        target = {"/to-loopback": "http://127.0.0.1:8080/admin",
                  "/to-internal": "http://internal.example/secret",
                  "/to-file": "file:///etc/passwd"}[request.url.path]
        return httpx.Response(302, headers={"location": target})

    rules = SourceRules()
    resolver = _resolver({"files.example": [PUBLIC], "internal.example": [INTERNAL]})
    for path, why in (("/to-loopback", "loopback"), ("/to-internal", "private"),
                      ("/to-file", "'file' URL")):
        with pytest.raises(fetch.FetchRefused) as refused:
            fetch.download(f"http://files.example{path}", io.BytesIO(), rules, what="uri",
                           resolver=resolver, transport=httpx.MockTransport(handler))
        assert why in str(refused.value), refused.value
    # Each first hop went to the address that was checked, with the name as Host.
    assert seen == [("93.184.216.34", "files.example")] * 3


def test_a_name_resolving_to_any_refused_address_is_refused_and_hops_are_bounded() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"location": "/again"})

    transport = httpx.MockTransport(handler)
    mixed = _resolver({"mixed.example": [PUBLIC, INTERNAL]})
    with pytest.raises(fetch.FetchRefused):
        fetch.download("http://mixed.example/x", io.BytesIO(), SourceRules(), what="uri",
                       resolver=mixed, transport=transport)
    assert calls == []
    loop = _resolver({"files.example": [PUBLIC]})
    with pytest.raises(fetch.FetchFailed):
        fetch.download("http://files.example/x", io.BytesIO(), SourceRules(), what="uri",
                       resolver=loop, transport=transport)
    assert len(calls) == fetch.MAX_REDIRECTS + 1


def test_a_download_past_the_archive_limit_stops_and_leaves_no_file(tmp_path: Path) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        while True:  # an endless body: only the limit ends it
            sent += 65536
            yield b"\0" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    rules = SourceRules(max_bytes=1 << 20)
    with pytest.raises(fetch.TooLarge) as refused, fetch.fetched(
            "https://files.example/big.tar.gz", tmp_path / "scratch", rules, what="uri",
            resolver=_resolver({"files.example": [PUBLIC]}),
            transport=httpx.MockTransport(handler)):
        pass
    assert "--max-image-archive-bytes" in str(refused.value) and str(1 << 20) in str(
        refused.value)
    assert sent <= (1 << 20) + 2 * 65536
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_download_that_takes_too_long_fails_like_any_other(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "DEADLINE", -1.0)  # already past when the first bytes come

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"slow", b"drip"]))

    out = io.BytesIO()
    with pytest.raises(fetch.FetchFailed) as failed:
        fetch.download("https://files.example/x.tar.gz", out, SourceRules(), what="uri",
                       resolver=_resolver({"files.example": [PUBLIC]}),
                       transport=httpx.MockTransport(handler))
    assert "failed" in str(failed.value) and out.getvalue() == b""


def test_https_to_the_pinned_address_keeps_the_name_for_sni_and_the_certificate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    material = tls.ensure_tls(tmp_path, hosts=["files.test"])

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"host={self.headers['host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(material.cert, material.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The test CA stands in for the public ones the server trusts.
    trusting = ssl.create_default_context(cafile=str(material.ca))
    monkeypatch.setattr(httpx, "Client", functools.partial(httpx.Client, verify=trusting))
    port, loopback = server.server_address[1], addresses.parse("127.0.0.1")
    rules = SourceRules(allow_private=True)
    try:
        out = io.BytesIO()
        fetch.download(f"https://files.test:{port}/x", out, rules, what="uri",
                       resolver=lambda _host, _port: [loopback] if loopback else [])
        assert out.getvalue() == f"host=files.test:{port}".encode()
        # Another name on the same address: its certificate does not match, so it fails.
        with pytest.raises(fetch.FetchFailed):
            fetch.download(f"https://other.test:{port}/x", io.BytesIO(), rules, what="uri",
                           resolver=lambda _host, _port: [loopback] if loopback else [])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- archives and directories -----------------------------------------------------------

def test_a_small_archive_expanding_past_the_limit_is_refused_quickly(api: Api) -> None:
    # 8 MiB of zeros compress to ~8 KiB: well under the 64 KiB archive limit.
    bomb = _tarball(api.images / "bomb.tar.gz", {"zeros": b"\0" * (8 << 20)})
    assert bomb.stat().st_size < SMALL.max_image_archive_bytes
    started = time.monotonic()
    error = _error(api.publish({"path": str(bomb)}))
    assert time.monotonic() - started < 5
    assert "max_image_expanded_bytes" in error["message"]
    assert "--max-image-expanded-bytes" in error["message"]
    assert str(SMALL.max_image_expanded_bytes) in error["message"]
    assert api.stored() == []


def test_a_huge_pax_header_is_refused_before_it_is_read_into_memory(api: Api) -> None:
    # Not a file's data, so no declared size counts it: the stream's own bound does.
    path = api.images / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("image.json")
        info.pax_headers = {"comment": "x" * (4 << 20)}
        archive.addfile(info, io.BytesIO(b""))
    assert path.stat().st_size < SMALL.max_image_archive_bytes
    error = _error(api.publish({"path": str(path)}))
    assert "--max-image-expanded-bytes" in error["message"]
    assert api.stored() == []


def test_an_archive_with_too_many_entries_is_refused(api: Api) -> None:
    many = _tarball(api.images / "many.tar.gz", {f"f{i}": b"x" for i in range(50)})
    error = _error(api.publish({"path": str(many)}))
    assert "max_image_files" in error["message"] and "--max-image-files" in error["message"]
    assert f"limit of {SMALL.max_image_files}" in error["message"]
    assert api.stored() == []


def test_an_archive_larger_than_the_archive_limit_is_refused(api: Api) -> None:
    big = _tarball(api.images / "big.tar.gz", {"noise": os.urandom(100 * 1024)})
    error = _error(api.publish({"path": str(big)}))
    assert "--max-image-archive-bytes" in error["message"]
    assert api.stored() == []


def test_a_directory_with_too_many_files_or_bytes_is_refused(api: Api) -> None:
    many = _image(api.images / "many", {f"f{i}": b"x" for i in range(30)})
    assert "--max-image-files" in _error(api.publish({"path": str(many)}))["message"]
    large = _image(api.images / "large", {"blob": b"\0" * (300 * 1024)})
    assert "--max-image-expanded-bytes" in _error(api.publish({"path": str(large)}))["message"]
    assert api.stored() == []


def test_absolute_dot_dot_and_device_members_are_still_refused(api: Api) -> None:
    for name, kind in (("/etc/cron.d/x", tarfile.REGTYPE), ("../escape", tarfile.REGTYPE),
                       ("dev", tarfile.CHRTYPE)):
        path = api.images / "bad.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo(name)
            info.type = kind
            archive.addfile(info, io.BytesIO(b""))
        error = _error(api.publish({"path": str(path)}))
        assert f'refused tar member "{name}"' in error["message"]
    assert api.stored() == []


# -- extensions: fileUris and the instance view ---------------------------------------------

def _custom_script(tmp_path: Path, settings: dict[str, Any],
                   rules: SourceRules | None = None) -> tuple[ExtensionStatus, bytes]:
    spec = ExtensionSpec(name="setup", publisher="Microsoft.Azure.Extensions",
                         type="CustomScript", type_handler_version="2.1",
                         settings=settings, protected_settings={})
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    console = io.BytesIO()
    ctx = extensions.Context(os_disk=disk, env={"PATH": os.environ["PATH"]}, console=console,
                             spawn_group=lambda _pgid: None,
                             sources=rules or SourceRules())
    return extensions.run(spec, ctx), console.getvalue()


def test_file_uris_to_loopback_or_outside_the_roots_are_refused(
        tmp_path: Path, http_server: tuple[str, list[str]]) -> None:
    base, asked = http_server
    for uri in (f"{base}/ok.tar.gz", "file:///etc/passwd"):
        status, _console = _custom_script(tmp_path, {"fileUris": [uri],
                                                     "commandToExecute": "true"})
        assert status.state == "Failed" and "refused" in (status.message or ""), status
    assert asked == []
    assert not (tmp_path / "disk" / "passwd").exists()


def test_what_a_command_prints_stays_out_of_the_instance_view(tmp_path: Path) -> None:
    status, console = _custom_script(tmp_path, {"commandToExecute": "echo TOP-SECRET-42"})
    assert status.state == "Succeeded"
    assert "TOP-SECRET-42" not in (status.message or "")
    assert b"TOP-SECRET-42" in console  # the console (boot diagnostics) still has it
    failed, _ = _custom_script(tmp_path, {"commandToExecute": "echo LEAK >&2; exit 3"})
    assert failed.state == "Failed" and "status 3" in (failed.message or "")
    assert "LEAK" not in (failed.message or "")
