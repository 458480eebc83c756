"""Errors show everything; --debug and --verbose show every request, never a secret."""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from scaleset.cli import app as root
from scaleset.cli import tracing
from scaleset.cli.client import ArmClient, ArmClientError, ClientFactory

TOKEN = "sst_0123abcd_do-not-print-me-ever-0123456789abcdef"
SECRET = "sst_9999ffff_the-new-tokens-secret-0123456789abcdef"
ERROR = {"error": {
    "code": "InvalidParameter", "message": "3 problems (and 2 more problems, see details)",
    "target": "properties.upgradePolicy",
    "details": [
        {"code": "AutomaticOSUpgradeNotSupported", "message": "the image is not allowed",
         "target": "properties.virtualMachineProfile.storageProfile.imageReference"},
        {"code": "HealthSignalRequired", "message": "no health probe or extension",
         "target": "properties.virtualMachineProfile.networkProfile.healthProbe",
         "details": [{"code": "ProbeMissing", "message": "the probe does not exist",
                      "target": "lb/probes/http"}]},
        {"code": "ApiVersionTooOld", "message": "use 2018-10-01 or later"},
    ]}}


def run(args: list[str], answer: httpx.Response, tmp_path: Path) -> Result:
    factory = ClientFactory(transport=httpx.MockTransport(lambda _: answer),
                            sleep=lambda _: None,
                            environ={"HOME": str(tmp_path), "SCALESET_TOKEN": TOKEN,
                                     "SCALESET_SERVER": "https://cp.test:8443"})
    return CliRunner().invoke(root.app, args, obj=factory)


def test_the_examples_in_the_docstrings_hold() -> None:
    from scaleset.cli import client

    for module in (tracing, client):
        result = doctest.testmod(module)
        assert result.failed == 0
    assert doctest.testmod(tracing).attempted > 0


def test_an_error_prints_code_message_target_and_every_detail(tmp_path: Path) -> None:
    result = run(["vmss", "show", "-g", "rg", "-n", "web"], httpx.Response(400, json=ERROR),
                 tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error (InvalidParameter): 3 problems (and 2 more problems, see details)",
        "  target: properties.upgradePolicy",
        "  details:",
        "  - (AutomaticOSUpgradeNotSupported) the image is not allowed",
        "    target: properties.virtualMachineProfile.storageProfile.imageReference",
        "  - (HealthSignalRequired) no health probe or extension",
        "    target: properties.virtualMachineProfile.networkProfile.healthProbe",
        "    - (ProbeMissing) the probe does not exist",
        "      target: lb/probes/http",
        "  - (ApiVersionTooOld) use 2018-10-01 or later",
    ]


def test_an_error_without_target_or_details_is_one_line(tmp_path: Path) -> None:
    result = run(["vmss", "show", "-g", "rg", "-n", "web"], httpx.Response(404, json={
        "error": {"code": "ResourceNotFound", "message": "no scale set web"}}), tmp_path)
    assert result.exit_code == 1
    assert result.stderr == "error (ResourceNotFound): no scale set web\n"


def test_a_failed_operation_keeps_its_details() -> None:
    document = {"status": "Failed", "error": ERROR["error"]}
    error = ArmClientError.from_operation(200, document)
    assert [d["code"] for d in error.details] == [
        "AutomaticOSUpgradeNotSupported", "HealthSignalRequired", "ApiVersionTooOld"]
    assert "ProbeMissing" in error.describe()


def test_very_deep_details_are_cut_off_with_a_count() -> None:
    nested: dict[str, Any] = {"code": "Leaf", "message": "bottom"}
    for level in range(20):
        nested = {"code": f"L{level}", "message": "m", "details": [nested]}
    text = ArmClientError(400, "Deep", "deep", details=[nested]).describe()
    assert "more nested details not shown" in text
    assert len(text.splitlines()) < 30


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_prints_one_line_per_request(tmp_path: Path, where: str) -> None:
    verb = ["vmss", "list", "-g", "rg"]
    args = ["--verbose", *verb] if where == "before" else [*verb, "--verbose"]
    result = run(args, httpx.Response(200, json={"value": []}), tmp_path)
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    assert re.fullmatch(r"GET https://cp\.test:8443/subscriptions/\S+/resourceGroups/rg/"
                        r"providers/Microsoft\.Compute/virtualMachineScaleSets\?api-version="
                        r"\S+ -> 200 OK \(\d+ ms\)", line), line


def test_debug_prints_requests_and_answers_but_never_the_token(tmp_path: Path) -> None:
    answer = httpx.Response(201, json={"id": "9999ffff", "token": SECRET, "role": "reader"},
                            headers={"X-Request-Token": SECRET, "Set-Cookie": f"s={SECRET}"})
    result = run(["token", "create", "--debug"], answer, tmp_path)
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "> POST https://cp.test:8443/scaleset/tokens?api-version=" in err
    assert "> Authorization: <redacted>" in err
    assert "> User-Agent: scaleset-cli" in err
    assert re.search(r"^< 201 Created \(\d+ ms\)$", err, re.MULTILINE)
    assert re.search(r"^< content-type: application/json$", err, re.MULTILINE | re.IGNORECASE)
    assert "< X-Request-Token: <redacted>" in err and "< Set-Cookie: <redacted>" in err
    assert TOKEN not in err and TOKEN.split("_", 2)[2] not in err
    assert err.count(SECRET) == 0  # the body is never printed; stdout has the token once
    assert result.stdout.strip() == SECRET


def test_debug_reports_a_request_that_got_no_answer(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    factory = ClientFactory(transport=httpx.MockTransport(refuse), sleep=lambda _: None,
                            environ={"HOME": str(tmp_path), "SCALESET_TOKEN": TOKEN})
    result = CliRunner().invoke(root.app, ["--debug", "vmss", "list"], obj=factory)
    assert result.exit_code == 1
    assert "no answer after" in result.stderr and "ConnectError" in result.stderr
    assert "error (ConnectionFailed)" in result.stderr
    assert TOKEN not in result.stderr


def test_without_the_flags_nothing_is_traced(tmp_path: Path) -> None:
    result = run(["vmss", "list"], httpx.Response(200, json={"value": []}), tmp_path)
    assert result.exit_code == 0
    assert result.stderr == ""


def test_a_tracer_sees_every_poll_of_an_operation() -> None:
    lines: list[str] = []
    answers = iter([
        httpx.Response(202, headers={"Location": "https://cp.test/op", "Retry-After": "0"}),
        httpx.Response(202, headers={"Location": "https://cp.test/op", "Retry-After": "0"}),
        httpx.Response(200, json={}),
    ])
    client = ArmClient(endpoint="https://cp.test", token=TOKEN, subscription="s",
                       transport=httpx.MockTransport(lambda _: next(answers)),
                       sleep=lambda _: None, tracer=tracing.Tracer(write=lines.append))
    client.wait(client.send("POST", "/x"))
    assert [line.split(" -> ")[1].split(" (")[0] for line in lines] == [
        "202 Accepted", "202 Accepted", "200 OK"]
