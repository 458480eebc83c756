"""``scaleset serve --driver process`` replicates gallery image versions by really copying
their artifacts into each region's store (its replicator wired into the reconcile loop)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.server import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp"
G = {"api-version": "2026-03-03"}
GALLERY = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/"
           "Microsoft.Compute/galleries/gal")
DEFINITION = f"{GALLERY}/images/webapp"


def replication(server: Server, version: str) -> dict[str, Any]:
    with server.http() as http:
        body = http.get(f"{DEFINITION}/versions/{version}",
                        params={**G, "$expand": "ReplicationStatus"}).json()
    status: dict[str, Any] = body["properties"]["replicationStatus"]
    return status


def replicated(server: Server, version: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = replication(server, version)
        if status["aggregatedState"] != "InProgress":
            return status
        assert time.monotonic() < deadline, f"{version} still replicating: {status}"
        time.sleep(0.2)


def test_the_process_server_copies_versions_into_region_stores(tmp_path: Path) -> None:
    with running_server(tmp_path, driver="process") as server, server.http() as http:
        assert http.put(GALLERY, params=G, json={"location": "westus"}).status_code == 201
        r = http.put(DEFINITION, params=G, json={"location": "westus", "properties": {
            "osType": "Linux", "identifier": {"publisher": "Contoso", "offer": "WebApp",
                                              "sku": "1"}}})
        assert r.status_code == 201, r.text
        r = http.put(f"{DEFINITION}/versions/1.0.0", params=G, json={
            "location": "westus", "properties": {
                "publishingProfile": {"targetRegions": [{"name": "westus"},
                                                        {"name": "North Europe"}]},
                "storageProfile": {"source": {"path": str(WEBAPP / "1.0.0")}}}})
        assert r.status_code == 201, r.text
        digest = r.json()["properties"]["artifact"]["digest"]
        status = replicated(server, "1.0.0")
        assert status["aggregatedState"] == "Completed", status
    for region in ("westus", "northeurope"):
        copy = tmp_path / "images" / "regions" / region / "sha256" / digest.split(":")[1]
        assert (copy / "image.json").is_file(), region
