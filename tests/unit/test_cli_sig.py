"""``scaleset sig ...`` against the real routes, in process, on a virtual clock.

Every poll's sleep moves the clock on and runs the replicator's round, as the
server's reconcile loop would; ``frozen`` runs keep the clock still.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.cli import sig
from scaleset.cli.client import ClientFactory
from scaleset.clock import VirtualClock
from scaleset.reconcile.replication import Replicator
from scaleset.store.repository import Store
from tests.unit.test_cli_client import InProcess

SUB = "00000000-0000-0000-0000-000000000000"
DEFINITION = (f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/"
              "galleries/gal/images/app")
NAMES = ("-g", "rg1", "-r", "gal")


@pytest.fixture
def run(sqlite_store: Store, tmp_path: Path) -> Callable[..., Result]:
    clock = VirtualClock()
    app = create_app(ApiContext(store=sqlite_store, clock=clock, auth_required=False,
                                page_size=1))
    replicator = Replicator(store=sqlite_store, clock=clock, artifacts=None,
                            delay=timedelta(seconds=2))

    def moving(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))
        replicator.replicate_pending(clock.now())

    environ = {"HOME": str(tmp_path), "SCALESET_ENDPOINT": "http://testserver",
               "SCALESET_TOKEN": "t"}
    factories = {True: ClientFactory(transport=InProcess(app), sleep=lambda _: None,
                                     environ=environ),
                 False: ClientFactory(transport=InProcess(app), sleep=moving, environ=environ)}

    def invoke(*args: str, frozen: bool = False) -> Result:
        return CliRunner().invoke(sig.app, list(args), obj=factories[frozen],
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})

    return invoke


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip() else None


def failed(result: Result, code: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error ({code})"), result.stderr
    return str(result.stderr)


def test_a_gallery_image_is_defined_published_replicated_and_removed(
        run: Callable[..., Result]) -> None:
    gallery = ok(run("create", *NAMES, "-l", "eastus"))
    assert gallery["properties"]["provisioningState"] == "Succeeded"
    definition = ok(run("image-definition", "create", *NAMES, "-i", "app", "--os-type", "linux",
                        "--publisher", "Contoso", "--offer", "App", "--sku", "1"))
    assert definition["id"] == DEFINITION
    assert definition["location"] == "eastus"  # the gallery's
    assert definition["properties"]["osState"] == "Generalized"

    version = ok(run("image-version", "create", *NAMES, "-i", "app", "-e", "1.0.0",
                     "--target-regions", "eastus", "westus=2=premium_lrs",
                     "--exclude-region-from-latest", "westus",
                     "--end-of-life-date", "2030-01-01"))
    assert version["properties"]["provisioningState"] == "Succeeded"  # waited for replication
    profile = version["properties"]["publishingProfile"]
    assert [(r["name"], r["regionalReplicaCount"], r["excludeFromLatest"])
            for r in profile["targetRegions"]] == [("eastus", 1, False), ("westus", 2, True)]
    assert profile["endOfLifeDate"] == "2030-01-01T00:00:00Z"

    shown = ok(run("image-version", "show", *NAMES, "-i", "app", "-e", "1.0.0",
                   "--expand", "replicationstatus"))
    assert shown["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
    assert "replicationStatus" not in ok(run("image-version", "show", *NAMES, "-i", "app",
                                             "-e", "1.0.0"))["properties"]

    updated = ok(run("image-version", "update", *NAMES, "-i", "app", "-e", "1.0.0",
                     "--target-regions", "eastus", "northeurope", "--exclude-from-latest"))
    assert [r["name"] for r in updated["properties"]["publishingProfile"]["targetRegions"]] \
        == ["eastus", "northeurope"]
    assert updated["properties"]["publishingProfile"]["excludeFromLatest"] is True
    assert updated["properties"]["provisioningState"] == "Succeeded"
    assert updated["properties"]["publishingProfile"]["endOfLifeDate"] == "2030-01-01T00:00:00Z"

    ok(run("image-version", "create", *NAMES, "-i", "app", "-e", "1.10.0"))
    ok(run("image-version", "create", *NAMES, "-i", "app", "-e", "1.9.0"))
    listed = run("image-version", "list", *NAMES, "-i", "app", "-o", "tsv")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [
        "1.0.0", "1.9.0", "1.10.0"]
    assert [d["name"] for d in ok(run("image-definition", "list", *NAMES))] == ["app"]
    assert [g["name"] for g in ok(run("list"))] == ["gal"]
    assert [g["name"] for g in ok(run("list", "-g", "rg1"))] == ["gal"]

    assert "delete them first" in failed(run("image-definition", "delete", *NAMES, "-i", "app"),
                                         "CannotDeleteResource")
    for version_name in ("1.0.0", "1.9.0", "1.10.0"):
        ok(run("image-version", "delete", *NAMES, "-i", "app", "-e", version_name))
    ok(run("image-definition", "delete", *NAMES, "-i", "app"))
    ok(run("delete", *NAMES))
    failed(run("show", *NAMES), "ResourceNotFound")


def test_waiting_for_replication_after_a_no_wait_publish(run: Callable[..., Result]) -> None:
    ok(run("create", *NAMES))
    ok(run("image-definition", "create", *NAMES, "-i", "app", "--os-type", "Linux",
           "--publisher", "P", "--offer", "O", "--sku", "S"))
    started = ok(run("image-version", "create", *NAMES, "-i", "app", "-e", "2.0.0",
                     "--no-wait", "--target-regions", "westus,eastus"))
    assert started["properties"]["provisioningState"] == "Creating"
    stuck = run("image-version", "wait", *NAMES, "-i", "app", "-e", "2.0.0", "--replicated",
                "--timeout", "3", frozen=True)
    assert "not replicated after 3 s" in failed(stuck, "Timeout")
    status = ok(run("image-version", "wait", *NAMES, "-i", "app", "-e", "2.0.0",
                    "--replicated"))
    assert status["aggregatedState"] == "Completed"
    assert {s["region"] for s in status["summary"]} == {"westus", "eastus"}


def test_bad_arguments_are_usage_errors(run: Callable[..., Result]) -> None:
    for args in (("--target-regions", "westus=many"),
                 ("--target-regions", "westus=1=Premium"),
                 ("--target-regions", "westus", "--exclude-region-from-latest", "eastus")):
        result = run("image-version", "create", *NAMES, "-i", "app", "-e", "1.0.0", *args)
        assert result.exit_code == 2, result.output
    refused = run("image-version", "create", *NAMES, "-i", "app", "-e", "1.0", "-l", "westus")
    assert "use Major.Minor.Patch" in failed(refused, "InvalidParameter")
    missing = run("image-version", "create", *NAMES, "-i", "app", "-e", "1.0.0", "-l", "westus")
    assert "create it first" in failed(missing, "ParentResourceNotFound")
