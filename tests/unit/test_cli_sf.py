"""``scaleset sf cluster ...`` against the real routes, in process: a cluster whose endpoint a
Service Fabric node type then uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.cli import sf
from scaleset.cli.client import ClientFactory
from scaleset.clock import VirtualClock
from scaleset.store.repository import Store
from tests.unit.test_cli_client import InProcess


@pytest.fixture
def run(sqlite_store: Store, tmp_path: Path) -> Callable[..., Result]:
    app = create_app(ApiContext(store=sqlite_store, clock=VirtualClock(), auth_required=False))
    environ = {"HOME": str(tmp_path), "SCALESET_ENDPOINT": "http://testserver",
               "SCALESET_TOKEN": "t"}
    factory = ClientFactory(transport=InProcess(app), sleep=lambda _: None, environ=environ)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(sf.app, list(args), obj=factory,
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})

    return invoke


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_a_cluster_is_created_shown_listed_and_deleted(run: Callable[..., Result]) -> None:
    created = ok(run("cluster", "create", "-g", "rg1", "-n", "sfc1", "--node-type", "nt1=silver",
                     "--node-type", "nt2=Gold=3"))
    props = created["properties"]
    assert [(n["name"], n["isPrimary"], n["durabilityLevel"], n["vmInstanceCount"])
            for n in props["nodeTypes"]] == [("nt1", True, "Silver", 5), ("nt2", False, "Gold", 3)]
    assert props["clusterEndpoint"].startswith(
        "https://westus.servicefabric.azure.com/runtime/clusters/")
    shown = ok(run("cluster", "show", "-g", "rg1", "-n", "sfc1"))
    assert shown["properties"]["clusterEndpoint"] == props["clusterEndpoint"]
    table = run("cluster", "list", "-g", "rg1", "-o", "table")
    assert table.exit_code == 0 and "nt1=Silver nt2=Gold" in table.stdout
    ok(run("cluster", "delete", "-g", "rg1", "-n", "sfc1"))
    assert ok(run("cluster", "list")) == []


def test_a_bad_node_type_is_refused_before_any_request(run: Callable[..., Result]) -> None:
    result = run("cluster", "create", "-g", "rg1", "-n", "sfc1", "--node-type", "nt1=Platinum")
    assert result.exit_code == 2
    assert "Bronze, Silver, Gold" in result.output
    missing = run("cluster", "show", "-g", "rg1", "-n", "sfc1")
    assert missing.exit_code != 0 and "ResourceNotFound" in missing.output
