"""``scaleset network lb ...`` against the real routes, in process (no server, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.cli import network, vmss
from scaleset.cli.client import ClientFactory
from scaleset.clock import EPOCH, VirtualClock
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import commands
from scaleset.store.repository import Store
from tests.unit.test_cli_client import InProcess

SUB = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def run(sqlite_store: Store, tmp_path: Path) -> Callable[..., Result]:
    app = create_app(ApiContext(store=sqlite_store, clock=VirtualClock(), auth_required=False,
                                page_size=1))
    seen: list[httpx.Request] = []

    class Recording(InProcess):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return super().handle_request(request)

    factory = ClientFactory(transport=Recording(app), sleep=lambda _: None, environ={
        "HOME": str(tmp_path), "SCALESET_ENDPOINT": "http://testserver", "SCALESET_TOKEN": "t"})

    def invoke(*args: str) -> Result:
        apps = {"network": network.app, "vmss": vmss.app}
        return CliRunner().invoke(apps[args[0]], list(args[1:]), obj=factory,
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})

    invoke.requests = seen  # type: ignore[attr-defined]
    return invoke


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_the_lb_verbs_create_probe_list_and_delete(run: Callable[..., Result]) -> None:
    lb = ok(run("network", "lb", "create", "-g", "rg1", "-n", "lb1", "--sku", "standard"))
    assert lb["sku"]["name"] == "Standard" and lb["location"] == "westus"
    requests = run.requests  # type: ignore[attr-defined]
    assert all(r.url.params["api-version"] == network.API_VERSION for r in requests)

    probe = ok(run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "lb1",
                   "-n", "http", "--protocol", "HTTP", "--port", "8080", "--path", "/health",
                   "--interval", "5", "--threshold", "3"))
    assert probe["id"] == (f"/subscriptions/{SUB}/resourceGroups/rg1/providers/"
                           "Microsoft.Network/loadBalancers/lb1/probes/http")
    assert probe["properties"]["intervalInSeconds"] == 5
    assert probe["properties"]["numberOfProbes"] == 3
    put = [r for r in requests if r.method == "PUT"][-1]
    assert put.headers["If-Match"] == lb["etag"]  # read-modify-write on the etag read
    ok(run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "lb1", "-n", "ssh",
           "--protocol", "tcp", "--port", "22"))
    # create again: the probes stay, only what is given changes
    again = ok(run("network", "lb", "create", "-g", "rg1", "-n", "lb1"))
    assert [p["name"] for p in again["properties"]["probes"]] == ["http", "ssh"]
    assert again["sku"]["name"] == "Standard"

    listed = run("network", "lb", "probe", "list", "-g", "rg1", "--lb-name", "lb1",
                 "-o", "tsv")
    assert [line.split("\t")[:3] for line in ok_lines(listed)] == [
        ["http", "Http", "8080"], ["ssh", "Tcp", "22"]]
    shown = ok(run("network", "lb", "probe", "show", "-g", "rg1", "--lb-name", "lb1",
                   "-n", "ssh"))
    assert shown["properties"]["protocol"] == "Tcp"

    ok(run("network", "lb", "create", "-g", "rg2", "-n", "lb2"))
    names = run("network", "lb", "list", "-o", "tsv")  # the subscription, one per page
    assert [line.split("\t")[0] for line in ok_lines(names)] == ["lb1", "lb2"]
    assert [i["name"] for i in ok(run("network", "lb", "list", "-g", "rg2"))] == ["lb2"]

    ok(run("network", "lb", "probe", "delete", "-g", "rg1", "--lb-name", "lb1", "-n", "ssh"))
    ok(run("network", "lb", "probe", "delete", "-g", "rg1", "--lb-name", "lb1", "-n", "ssh"))
    assert [p["name"] for p in ok(run("network", "lb", "show", "-g", "rg1", "-n", "lb1"))[
        "properties"]["probes"]] == ["http"]

    ok(run("network", "lb", "delete", "-g", "rg2", "-n", "lb2"))
    gone = run("network", "lb", "show", "-g", "rg2", "-n", "lb2")
    assert (gone.exit_code, gone.stderr.split(":")[0]) == (1, "error (ResourceNotFound)")


def ok_lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_bad_probes_and_probes_in_use_are_reported(run: Callable[..., Result]) -> None:
    missing = run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "nope",
                  "-n", "http", "--protocol", "Tcp", "--port", "22")
    assert missing.exit_code == 1 and "ResourceNotFound" in missing.stderr

    ok(run("network", "lb", "create", "-g", "rg1", "-n", "lb1"))
    bad = run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "lb1", "-n",
              "http", "--protocol", "Http", "--port", "80")
    assert bad.exit_code == 1
    assert "error (InvalidParameter)" in bad.stderr and "requestPath is required" in bad.stderr

    refused = run("vmss", "create", "-g", "rg1", "-n", "web", "--image",
                  "Canonical:ubuntu:server:1.0.0", "--health-probe",
                  f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Network/"
                  "loadBalancers/lb1/probes/http")
    assert refused.exit_code == 1 and "has no probe 'http'" in refused.stderr


def test_deleting_a_probe_in_use_is_refused(run: Callable[..., Result],
                                            sqlite_store: Store) -> None:
    ok(run("network", "lb", "create", "-g", "rg1", "-n", "lb1"))
    probe = ok(run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "lb1", "-n",
                   "tcp", "--protocol", "Tcp", "--port", "22"))
    # A scale set that uses the probe (made directly: no image catalogue needed here).
    model = ScaleSet.model_validate({"name": "web", "location": "westus", "properties": {
        "virtualMachineProfile": {"networkProfile": {"healthProbe": {"id": probe["id"]}}}}})
    commands.create_scale_set(sqlite_store, scale_set_id="/subscriptions/s/resourcegroups/rg1/"
                              "providers/microsoft.compute/virtualmachinescalesets/web",
                              model=model, now=EPOCH)
    refused = run("network", "lb", "probe", "delete", "-g", "rg1", "--lb-name", "lb1",
                  "-n", "tcp")
    assert refused.exit_code == 1
    assert "InUseProbeCannotBeDeleted" in refused.stderr and "'web'" in refused.stderr
    refused = run("network", "lb", "delete", "-g", "rg1", "-n", "lb1")
    assert refused.exit_code == 1
    assert "LoadBalancerInUseByVirtualMachineScaleSet" in refused.stderr
