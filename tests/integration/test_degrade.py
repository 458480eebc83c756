"""Issue 12 item 7, disk full: reads keep answering, writes get 507 InsufficientStorage with
Retry-After (never a 400 or a 503), /healthz says "degraded", nothing is corrupted, and the
server recovers alone when space returns.

The fault is injected under SQLAlchemy (the DBAPI's execute raises SQLite's own "database
or disk is full" for every write statement while the disk is "full"), so the error takes
the path a real full disk takes: driver error, the store's classification, the envelope.
Image ingest gets ENOSPC from the file copy. The real full filesystem is the fault suite's.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.artifacts import ArtifactStore
from scaleset.reconcile.settings import ShellSettings, SourcePolicy
from scaleset.store.repository import Store
from tests.integration.test_api import RG, SUB, V, body
from tests.support import World

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = "?api-version=2026-04-01"


@dataclass
class Disk:
    """What the injected faults read: whether writes find no space, whether reads fail."""

    full: bool = False
    reads_broken: bool = False


@dataclass
class Api:
    client: TestClient
    disk: Disk
    store: Store
    sources: Path
    data: Path


@pytest.fixture
def api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    world = World.create(sqlite_store)
    disk = Disk()

    def execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if disk.full and verb in WRITES:
            raise sqlite3.OperationalError("database or disk is full")
        if disk.reads_broken and verb == "SELECT":
            raise sqlite3.OperationalError("disk I/O error")
        cursor.execute(statement, parameters)
        return True  # executed here: SQLAlchemy must not execute it again

    event.listen(sqlite_store.engine, "do_execute", execute)
    sources, data = tmp_path / "sources", tmp_path / "data"
    sources.mkdir()
    context = ApiContext(store=sqlite_store, clock=world.clock, auth_required=False,
                         artifacts=ArtifactStore(data / "images", data_dir=data),
                         settings=ShellSettings(sources=SourcePolicy(roots=(sources,))))
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(client, disk, sqlite_store, sources, data)
    event.remove(sqlite_store.engine, "do_execute", execute)


def _insufficient(r: httpx.Response) -> None:
    assert r.status_code == 507, r.text
    error = r.json()["error"]
    assert error["code"] == "InsufficientStorage"
    assert "no space left" in error["message"] and "nothing was changed" in error["message"]
    assert int(r.headers["Retry-After"]) > 0


def test_a_full_disk_refuses_writes_with_507_keeps_reads_and_recovers_alone(api: Api) -> None:
    c = api.client
    vmss = f"{RG}/virtualMachineScaleSets/vmss1{V}"
    assert c.put(vmss, json=body()).status_code == 201
    before = c.get(vmss).json()
    healthy = c.get("/healthz").json()
    assert healthy["status"] == "ok" and healthy["storage"]["ok"] is True
    assert healthy["storage"]["free"] > 0

    api.disk.full = True
    _insufficient(c.patch(vmss, json={"tags": {"team": "a"}}))
    _insufficient(c.put(f"{RG}/virtualMachineScaleSets/vmss2{V}", json=body()))
    _insufficient(c.delete(vmss))
    _insufficient(c.post(f"{RG}/virtualMachineScaleSets/vmss1/osRollingUpgrade{V}"))
    # Reads answer as before: the same resource, the same etag, no 503.
    r = c.get(vmss)
    assert r.status_code == 200 and r.json() == before
    assert [v["name"] for v in c.get(f"{RG}/virtualMachineScaleSets{V}").json()["value"]] \
        == ["vmss1"]
    assert c.get(f"{RG}/virtualMachineScaleSets/vmss2{V}").status_code == 404
    health = c.get("/healthz")
    assert health.status_code == 200  # alive and serving reads: not a restart case
    assert health.json()["status"] == "degraded"
    storage = health.json()["storage"]
    assert storage["ok"] is False and "database or disk is full" in storage["reason"]

    api.disk.full = False  # space returns: no restart, the next write succeeds
    r = c.patch(vmss, json={"tags": {"team": "a"}})
    assert r.status_code == 200, r.text
    assert c.get(vmss).json()["tags"] == {"team": "a"}
    assert c.get("/healthz").json()["status"] == "ok"
    assert c.put(f"{RG}/virtualMachineScaleSets/vmss2{V}", json=body()).status_code == 201
    with api.store.engine.connect() as conn:  # SQLite rolled every refused write back
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_an_image_whose_copy_finds_no_space_is_a_507_and_nothing_is_kept(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    image = api.sources / "app"
    image.mkdir()
    (image / "image.json").write_text('{"osType": "Linux", "entrypoint": ["true"]}')
    (image / "app.py").write_text("print('hello')\n")
    publish = {"location": "westus", "properties": {"source": {"path": str(image)}}}

    def no_space(src: str, dst: str, **_: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", dst)

    monkeypatch.setattr(shutil, "copy2", no_space)
    r = api.client.put(f"{VERSIONS}/1.0.0{COMPUTE}", json=publish)
    _insufficient(r)
    assert api.client.get(f"{VERSIONS}/1.0.0{COMPUTE}").status_code == 404
    assert list((api.data / "images" / "sha256").iterdir()) == []
    assert list((api.data / "images" / ".tmp").iterdir()) == []
    assert api.client.get("/healthz").json()["status"] == "degraded"

    monkeypatch.undo()
    r = api.client.put(f"{VERSIONS}/1.0.0{COMPUTE}", json=publish)
    assert r.status_code in (200, 201), r.text
    assert api.client.get("/healthz").json()["status"] == "ok"


def test_healthz_is_503_only_while_reads_fail(api: Api) -> None:
    c = api.client
    vmss = f"{RG}/virtualMachineScaleSets/vmss1{V}"
    assert c.put(vmss, json=body()).status_code == 201
    api.disk.reads_broken = True
    assert c.get(vmss).status_code == 503
    health = c.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable" and "disk I/O error" in health.json()["reads"]
    api.disk.reads_broken = False
    assert c.get(vmss).status_code == 200
    assert c.get("/healthz").status_code == 200
