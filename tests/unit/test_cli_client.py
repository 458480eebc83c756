"""The client verbs against a fake ARM server (``httpx.MockTransport``): no network, no sleeps.

The fake answers the routes the verbs use the way ``scaleset serve`` does
(``Azure-AsyncOperation`` + ``Retry-After`` on writes, ``{"value", "nextLink"}``
pages, the error envelope); tests assert what reached it and what the user saw.
"""

from __future__ import annotations

import asyncio
import doctest
import json
import re
import stat
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from scaleset.cli import clientconfig, image, network, output, vmss
from scaleset.cli.client import ArmClient, ArmClientError, ClientFactory, TransportError
from scaleset.cli.clientconfig import ClientConfigError

ENDPOINT = "https://arm.test:8443"
SUB = "00000000-0000-0000-0000-000000000000"
SS = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/" \
     "virtualMachineScaleSets/vmss1"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/operations"

Responder = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeArm:
    """Routes (method, path) to canned answers, in order; the last one repeats."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Responder]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Responder) -> None:
        self.routes[(method, path)] = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json={"error": {
                "code": "NotFound", "message": f"no route {request.method} {request.url.path}"}})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else answer

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def body(self, method: str, path: str) -> Any:
        return json.loads(self.sent(method, path)[-1].content)

    def operation(self, op_id: str, *statuses: str, error: dict[str, str] | None = None,
                  retry_after: str = "1") -> dict[str, str]:
        """An operation that reports ``statuses`` in turn; the headers that start it."""
        answers: list[Responder] = []
        for status in statuses:
            doc: dict[str, Any] = {"name": op_id, "status": status}
            if error and status in ("Failed", "Canceled"):
                doc["error"] = error
            headers = {"Retry-After": retry_after} if status == "InProgress" else {}
            answers.append(httpx.Response(200, json=doc, headers=headers))
        self.on("GET", f"{OPS}/{op_id}", *answers)
        url = f"{ENDPOINT}{OPS}/{op_id}?api-version=2026-04-01"
        return {"Azure-AsyncOperation": url, "Location": url + "&monitor=true",
                "Retry-After": retry_after}


def scale_set(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": SS, "name": "vmss1", "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": "westus", "etag": '"7"', "sku": {"name": "Standard_D2s_v3", "capacity": 2},
        "properties": {
            "provisioningState": "Succeeded",
            "upgradePolicy": {"mode": "Manual", "automaticOSUpgradePolicy": {
                "enableAutomaticOSUpgrade": False}},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {
                    "publisher": "Canonical", "offer": "ubuntu", "sku": "server",
                    "version": "latest", "exactVersion": "1.0.0"}},
                "extensionProfile": {"extensions": [
                    {"name": "health", "properties": {
                        "publisher": "Microsoft.ManagedServices",
                        "type": "ApplicationHealthLinux", "settings": {"port": 80}}}]}}}}
    body.update(changes)
    return body


def latest(code: str, ok: int = 0, failed: int = 0, busy: int = 0, pending: int = 0,
           error: dict[str, str] | None = None) -> httpx.Response:
    props: dict[str, Any] = {
        "runningStatus": {"code": code, "lastAction": "Start"},
        "progress": {"successfulInstanceCount": ok, "failedInstanceCount": failed,
                     "inProgressInstanceCount": busy, "pendingInstanceCount": pending}}
    if error:
        props["error"] = error
    return httpx.Response(200, json={"name": "latest", "location": "westus",
                                     "properties": props})


@pytest.fixture
def fake() -> FakeArm:
    return FakeArm()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: FakeArm, sleeps: list[float]) -> ArmClient:
    return ArmClient(endpoint=ENDPOINT, token="tok", subscription=SUB,
                     transport=httpx.MockTransport(fake), sleep=sleeps.append)


@pytest.fixture
def cli(fake: FakeArm, sleeps: list[float], tmp_path: Path) -> Callable[..., Result]:
    """Run ``scaleset vmss|vm ...`` against the fake, with a token from the environment."""
    root_apps = {"vmss": vmss.app, "vm": image.app, "image": image.images}

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        environ = {"HOME": str(tmp_path), "SCALESET_ENDPOINT": ENDPOINT,
                   "SCALESET_TOKEN": "tok", **(env or {})}
        factory = ClientFactory(transport=httpx.MockTransport(fake), sleep=sleeps.append,
                                environ=environ)
        return CliRunner().invoke(root_apps[args[0]], list(args[1:]), obj=factory,
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})

    return run


# -- the docstrings' examples ---------------------------------------------------------

@pytest.mark.parametrize("module", [clientconfig, output, vmss, image, network],
                         ids=lambda m: m.__name__)
def test_the_examples_in_the_docstrings_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# -- configuration ----------------------------------------------------------------------

def test_flags_beat_environment_beat_config_file_beat_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"endpoint": "https://from-file:1", "caFile": "ca.pem",
                                  "subscription": "file-sub", "token": "file-token"}))
    # The same server spelled differently: its profile still applies (another server's would
    # not; see test_clientconfig_profiles.py).
    env = {"SCALESET_CONFIG": str(config), "SCALESET_ENDPOINT": "https://FROM-FILE:1/",
           "SCALESET_TOKEN": "env-token"}
    resolved = clientconfig.resolve(token="flag-token", environ=env)
    assert resolved.token == "flag-token"
    assert resolved.endpoint == "https://FROM-FILE:1"
    assert resolved.subscription == "file-sub"
    assert resolved.ca_file == str(tmp_path / "ca.pem")  # relative to the config file
    bare = clientconfig.resolve(environ={"HOME": str(tmp_path / "nobody")})
    assert (bare.endpoint, bare.subscription, bare.token) == (
        "https://127.0.0.1:8443", SUB, None)


def test_the_default_config_file_lives_under_home(tmp_path: Path) -> None:
    clientconfig.write_client_config(tmp_path / ".config" / "scaleset" / "config.json",
                                      endpoint="https://cp:9443", ca_file=None,
                                      subscription="s1")
    resolved = clientconfig.resolve(environ={"HOME": str(tmp_path)})
    assert (resolved.endpoint, resolved.subscription) == ("https://cp:9443", "s1")


def test_a_config_file_with_a_token_is_private_and_round_trips(tmp_path: Path) -> None:
    path = clientconfig.write_client_config(
        tmp_path / "cfg" / "config.json", endpoint="https://cp:8443",
        ca_file=tmp_path / "ca.pem", subscription="s1", token="secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    resolved = clientconfig.resolve(environ={"SCALESET_CONFIG": str(path)})
    assert (resolved.token, resolved.ca_file) == ("secret", str(tmp_path / "ca.pem"))
    assert "secret" not in repr(resolved)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize(("env", "code"), [
    ({"SCALESET_CONFIG": "/nonexistent/config.json"}, "ConfigNotFound"),
    ({"SCALESET_ENDPOINT": "cp:8443"}, "InvalidEndpoint"),
])
def test_unusable_settings_say_which_key_is_wrong(env: dict[str, str], code: str) -> None:
    with pytest.raises(ClientConfigError) as caught:
        clientconfig.resolve(environ={"HOME": "/nonexistent", **env})
    assert caught.value.code == code
    assert next(iter(env)) in caught.value.message


def test_a_missing_token_names_the_variable_and_the_command(
        cli: Callable[..., Result]) -> None:
    result = cli("vmss", "show", "-g", "rg1", "-n", "vmss1", env={"SCALESET_TOKEN": ""})
    assert result.exit_code == 1
    assert result.stderr.startswith("error (MissingToken):")
    assert "SCALESET_TOKEN" in result.stderr
    assert "scaleset token create" in result.stderr


# -- requests, errors, paging -------------------------------------------------------------

def test_requests_carry_the_token_and_the_api_version(fake: FakeArm, client: ArmClient) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set()))
    assert client.get(SS)["name"] == "vmss1"
    request = fake.requests[0]
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.url.params["api-version"] == "2026-04-01"


def test_the_error_envelope_becomes_an_arm_client_error(fake: FakeArm, client: ArmClient
                                                        ) -> None:
    fake.on("PUT", SS, httpx.Response(400, json={"error": {
        "code": "InvalidParameter", "message": "sku.capacity must be 0 or more",
        "target": "sku.capacity"}}))
    with pytest.raises(ArmClientError) as caught:
        client.put(SS, {"location": "westus"})
    assert (caught.value.status, caught.value.code, caught.value.message,
            caught.value.target) == (400, "InvalidParameter", "sku.capacity must be 0 or more",
                                     "sku.capacity")


def test_an_error_without_an_envelope_is_still_readable(fake: FakeArm, client: ArmClient
                                                        ) -> None:
    fake.on("GET", SS, httpx.Response(502, text="upstream went away"))
    with pytest.raises(ArmClientError) as caught:
        client.get(SS)
    assert caught.value.code == "BadGateway"
    assert "upstream went away" in caught.value.message


def test_get_retries_a_busy_server_after_retry_after(fake: FakeArm, client: ArmClient,
                                                     sleeps: list[float]) -> None:
    fake.on("GET", SS, httpx.Response(503, headers={"Retry-After": "5"}, json={"error": {
        "code": "ServiceUnavailable", "message": "retry later"}}),
        httpx.Response(200, json=scale_set()))
    assert client.get(SS)["name"] == "vmss1"
    assert sleeps == [5.0]


def test_paging_follows_next_link_verbatim(fake: FakeArm, client: ArmClient) -> None:
    path = SS.rsplit("/", 1)[0]
    link = f"{ENDPOINT}{path}?api-version=2026-04-01&%24skiptoken=1"
    fake.on("GET", path, lambda r: httpx.Response(200, json=(
        {"value": [{"name": "a"}], "nextLink": link} if "skiptoken" not in str(r.url)
        else {"value": [{"name": "b"}]})))
    assert [i["name"] for i in client.paged(path)] == ["a", "b"]
    assert str(fake.requests[1].url) == link  # not a second api-version


def test_a_link_to_another_host_never_gets_the_token(fake: FakeArm, client: ArmClient) -> None:
    path = SS.rsplit("/", 1)[0]
    fake.on("GET", path, httpx.Response(200, json={
        "value": [], "nextLink": "https://evil.test/steal?api-version=2026-04-01"}))
    with pytest.raises(ArmClientError, match="refusing to send the token"):
        list(client.paged(path))
    assert len(fake.requests) == 1


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


@pytest.mark.parametrize(("exc", "code"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), "ConnectionFailed"),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"),
     "CertificateVerifyFailed"),
    (httpx.ReadTimeout("timed out"), "Timeout"),
    (httpx.RemoteProtocolError("peer closed"), "TransportError"),
])
def test_every_transport_failure_maps_to_a_client_error(exc: Exception, code: str) -> None:
    arm = ArmClient(endpoint=ENDPOINT, token="t", subscription=SUB,
                    transport=httpx.MockTransport(_raise(exc)))
    with pytest.raises(TransportError) as caught:
        arm.get(SS)
    assert caught.value.code == code
    assert caught.value.__cause__ is exc


# -- long-running operations --------------------------------------------------------------

def test_wait_polls_the_operation_honouring_retry_after_then_gets_the_resource(
        fake: FakeArm, client: ArmClient, sleeps: list[float]) -> None:
    headers = fake.operation("op1", "InProgress", "InProgress", "Succeeded", retry_after="3")
    fake.on("PUT", SS, httpx.Response(201, json=scale_set(), headers=headers))
    fake.on("GET", SS, httpx.Response(200, json=scale_set(name="final")))
    polls: list[str] = []
    result = client.wait(client.send("PUT", SS, json={"location": "westus"}),
                         on_poll=lambda doc: polls.append(doc["status"]))
    assert result["name"] == "final"
    assert sleeps == [3.0, 3.0, 3.0]
    assert polls == ["InProgress", "InProgress", "Succeeded"]


def test_a_long_retry_after_is_capped(fake: FakeArm, client: ArmClient,
                                      sleeps: list[float]) -> None:
    headers = fake.operation("op1", "Succeeded", retry_after="3600")
    fake.on("POST", SS + "/reimage", httpx.Response(202, headers=headers))
    client.wait(client.send("POST", SS + "/reimage"))
    assert sleeps[0] == client.max_poll_interval


@pytest.mark.parametrize(("status", "error", "code"), [
    ("Failed", {"code": "RollingUpgradeFailed", "message": "3 of 5 instances unhealthy"},
     "RollingUpgradeFailed"),
    ("Canceled", None, "OperationCanceled"),
])
def test_a_failed_operation_raises_its_error(fake: FakeArm, client: ArmClient, status: str,
                                             error: dict[str, str] | None, code: str) -> None:
    headers = fake.operation("op1", "InProgress", status, error=error)
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(202, headers=headers))
    with pytest.raises(ArmClientError) as caught:
        client.wait(client.send("POST", SS + "/osRollingUpgrade"))
    assert caught.value.code == code
    if error:
        assert caught.value.message == error["message"]


def test_a_location_only_operation_is_polled_until_it_stops_answering_202(
        fake: FakeArm, client: ArmClient, sleeps: list[float]) -> None:
    monitor = f"{ENDPOINT}/monitor/1?api-version=2026-04-01"
    fake.on("DELETE", SS, httpx.Response(202, headers={"Location": monitor,
                                                       "Retry-After": "2"}))
    fake.on("GET", "/monitor/1", httpx.Response(202, headers={"Retry-After": "1"}),
            httpx.Response(204))
    assert client.wait(client.send("DELETE", SS)) is None
    assert sleeps == [2.0, 1.0]


# -- vmss create ----------------------------------------------------------------------------

def _accept_put(fake: FakeArm) -> None:
    def put(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        fake.on("GET", SS, httpx.Response(200, json={**body, "id": SS, "name": "vmss1"}))
        return httpx.Response(201, json=body, headers=fake.operation("op1", "Succeeded"))
    fake.on("PUT", SS, put)


def test_create_maps_flags_to_the_scale_set_body(fake: FakeArm, cli: Callable[..., Result],
                                                 tmp_path: Path) -> None:
    _accept_put(fake)
    script = tmp_path / "init.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = cli("vmss", "create", "-g", "rg1", "-n", "vmss1",
                 "--image", "Canonical:ubuntu-24_04-lts:server:latest",
                 "--instance-count", "5", "--upgrade-policy-mode", "rolling",
                 "--enable-auto-os-upgrade", "--health-probe", "/probes/http",
                 "--zones", "1", "2", "3", "--max-batch-instance-percent", "20",
                 "--pause-time-between-batches", "30", "--data-disk-sizes-gb", "32", "64",
                 "--custom-data", str(script), "--tags", "env=prod", "team=os")
    assert result.exit_code == 0, result.output
    body = fake.body("PUT", SS)
    props = body["properties"]
    vm = props["virtualMachineProfile"]
    assert body["location"] == "westus"
    assert body["sku"]["capacity"] == 5
    assert body["zones"] == ["1", "2", "3"]
    assert body["tags"] == {"env": "prod", "team": "os"}
    assert vm["storageProfile"]["imageReference"] == {
        "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server",
        "version": "latest"}
    assert vm["storageProfile"]["dataDisks"] == [
        {"lun": 0, "createOption": "Empty", "diskSizeGB": 32},
        {"lun": 1, "createOption": "Empty", "diskSizeGB": 64}]
    assert vm["networkProfile"]["healthProbe"] == {"id": "/probes/http"}
    assert vm["osProfile"]["customData"] == "IyEvYmluL3NoCmVjaG8gaGkK"
    assert props["upgradePolicy"] == {
        "mode": "Rolling",
        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
        "rollingUpgradePolicy": {"maxBatchInstancePercent": 20,
                                 "pauseTimeBetweenBatches": "PT30S"}}
    assert json.loads(result.stdout)["name"] == "vmss1"  # the resource after the wait


def test_create_from_a_file_lets_flags_override_it(fake: FakeArm, cli: Callable[..., Result],
                                                   tmp_path: Path) -> None:
    _accept_put(fake)
    file = tmp_path / "body.json"
    file.write_text(json.dumps({"location": "eastus", "sku": {"capacity": 1},
                                "properties": {"upgradePolicy": {"mode": "Manual"}}}))
    result = cli("vmss", "create", "-g", "rg1", "-n", "vmss1", "--file", str(file),
                 "--instance-count", "4", "--no-wait")
    assert result.exit_code == 0, result.output
    assert fake.body("PUT", SS) == {"location": "eastus", "sku": {"capacity": 4},
                                    "properties": {"upgradePolicy": {"mode": "Manual"}}}
    assert not fake.sent("GET", f"{OPS}/op1")  # --no-wait: no polling


@pytest.mark.parametrize("args", [
    ("--image", "Canonical:ubuntu"),
    ("--image", "Canonical::server:latest"),
    (),
    ("--image", "a:b:c", "--pause-time-between-batches", "soon"),
])
def test_create_refuses_bad_usage_with_exit_2(fake: FakeArm, cli: Callable[..., Result],
                                              args: tuple[str, ...]) -> None:
    result = cli("vmss", "create", "-g", "rg1", "-n", "vmss1", *args)
    assert result.exit_code == 2
    assert fake.requests == []


# -- vmss update --set ----------------------------------------------------------------------

@pytest.mark.parametrize(("assignment", "patch"), [
    ("sku.capacity=5", {"sku": {"capacity": 5}}),
    ("SKU.Capacity=5", {"sku": {"capacity": 5}}),
    ("upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade=true",
     {"properties": {"upgradePolicy": {"automaticOSUpgradePolicy": {
         "enableAutomaticOSUpgrade": True}}}}),
    ("UpgradePolicy.AutomaticOSUpgradePolicy.EnableAutomaticOSUpgrade=true",
     {"properties": {"upgradePolicy": {"automaticOSUpgradePolicy": {
         "enableAutomaticOSUpgrade": True}}}}),
    ("upgradePolicy.mode=Rolling", {"properties": {"upgradePolicy": {"mode": "Rolling"}}}),
    ("properties.upgradePolicy.mode=Rolling",
     {"properties": {"upgradePolicy": {"mode": "Rolling"}}}),
    ("tags.env=prod", {"tags": {"env": "prod"}}),
    ('upgradePolicy.rollingUpgradePolicy={"maxBatchInstancePercent": 50}',
     {"properties": {"upgradePolicy": {"rollingUpgradePolicy": {
         "maxBatchInstancePercent": 50}}}}),
    ('virtualMachineProfile.storageProfile.imageReference.version="1.10"',  # a JSON string
     {"properties": {"virtualMachineProfile": {"storageProfile": {"imageReference": {
         "version": "1.10"}}}}}),
])
def test_set_paths_follow_az(assignment: str, patch: dict[str, Any]) -> None:
    assert vmss.build_patch(scale_set(), [vmss.parse_assignment(assignment)]) == patch


def test_setting_inside_a_list_sends_the_whole_list() -> None:
    built = vmss.build_patch(scale_set(), [vmss.parse_assignment(
        "virtualMachineProfile.extensionProfile.extensions[0].settings.port=8080")])
    extensions = built["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"]
    assert extensions == [{"name": "health", "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
        "settings": {"port": 8080}}}]


@pytest.mark.parametrize("assignment", [
    "virtualMachineProfile.extensionProfile.extensions[3].name=x",
    "location.city=x",
    "sku.capacity",
])
def test_impossible_set_paths_are_usage_errors(assignment: str) -> None:
    with pytest.raises(typer.BadParameter):
        vmss.build_patch(scale_set(), [vmss.parse_assignment(assignment)])


def test_update_patches_with_if_match_and_waits(fake: FakeArm, cli: Callable[..., Result]
                                                ) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set(), headers={"ETag": '"7"'}))
    fake.on("PATCH", SS, httpx.Response(200, json=scale_set(),
                                        headers=fake.operation("op2", "Succeeded")))
    result = cli("vmss", "update", "-g", "rg1", "-n", "vmss1", "--set", "sku.capacity=5",
                 "--set", "upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade=true")
    assert result.exit_code == 0, result.output
    request = fake.sent("PATCH", SS)[0]
    assert request.headers["If-Match"] == '"7"'
    assert json.loads(request.content) == {"sku": {"capacity": 5}, "properties": {
        "upgradePolicy": {"automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}}}}
    assert len(fake.sent("GET", f"{OPS}/op2")) == 1


def test_update_without_set_is_a_usage_error(cli: Callable[..., Result]) -> None:
    assert cli("vmss", "update", "-g", "rg1", "-n", "vmss1").exit_code == 2


def test_a_lost_etag_race_is_reported_not_retried(fake: FakeArm, cli: Callable[..., Result]
                                                  ) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set(), headers={"ETag": '"7"'}))
    fake.on("PATCH", SS, httpx.Response(412, json={"error": {
        "code": "PreconditionFailed", "message": "If-Match \"7\" does not match"}}))
    result = cli("vmss", "update", "-g", "rg1", "-n", "vmss1", "--set", "sku.capacity=5")
    assert result.exit_code == 1
    assert result.stderr == 'error (PreconditionFailed): If-Match "7" does not match\n'


# -- vmss read verbs and output -------------------------------------------------------------

def test_list_follows_pages_and_prints_a_table(fake: FakeArm, cli: Callable[..., Result]
                                               ) -> None:
    path = SS.rsplit("/", 1)[0]
    second = f"{ENDPOINT}{path}?api-version=2026-04-01&%24skiptoken=1"
    fake.on("GET", path, lambda r: httpx.Response(200, json=(
        {"value": [scale_set()], "nextLink": second} if "skiptoken" not in str(r.url)
        else {"value": [scale_set(name="vmss2", zones=["1", "2"])]})))
    result = cli("vmss", "list", "-g", "rg1", "--output", "table")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.split(r"\s+", lines[0].strip())[:4] == ["Name", "ResourceGroup", "Location",
                                                      "Zones"]
    assert "vmss1" in lines[2] and "Canonical:ubuntu:server:latest (1.0.0)" in lines[2]
    assert "vmss2" in lines[3] and "1 2" in lines[3]


def test_tsv_prints_the_columns_without_a_header(fake: FakeArm, cli: Callable[..., Result]
                                                 ) -> None:
    fake.on("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets",
            httpx.Response(200, json={"value": [scale_set()]}))
    result = cli("vmss", "list", "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("vmss1\trg1\twestus\t\t2\tCanonical:ubuntu:server:latest (1.0.0)"
                             "\tManual\tFalse\tSucceeded\n")


def test_output_none_prints_nothing_but_still_makes_the_request(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set()))
    result = cli("vmss", "show", "-g", "rg1", "-n", "vmss1", "-o", "none")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    fake.on("GET", SS, httpx.Response(404, json={"error": {"code": "ResourceNotFound",
                                                           "message": "no vmss1"}}))
    missing = cli("vmss", "show", "-g", "rg1", "-n", "vmss1", "-o", "none")
    assert missing.exit_code != 0 and "ResourceNotFound" in missing.output


def test_json_output_is_the_servers_json(fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set()))
    result = cli("vmss", "show", "-g", "rg1", "-n", "vmss1")
    assert json.loads(result.stdout) == scale_set()


def test_a_server_error_prints_code_and_message_and_exits_1(cli: Callable[..., Result]) -> None:
    result = cli("vmss", "show", "-g", "rg1", "-n", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("error (NotFound): no route GET")
    assert result.stdout == ""


def test_list_instances_expands_the_instance_view(fake: FakeArm, cli: Callable[..., Result]
                                                  ) -> None:
    fake.on("GET", SS + "/virtualMachines", httpx.Response(200, json={"value": [
        {"instanceId": "0", "name": "vmss1_0", "properties": {
            "instanceView": {"vmHealth": {"status": {"code": "HealthState/healthy"}}}}}]}))
    result = cli("vmss", "list-instances", "-g", "rg1", "-n", "vmss1", "--expand",
                 "instanceView", "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert fake.requests[0].url.params["$expand"] == "instanceView"
    assert result.stdout.split("\t")[:2] == ["0", "vmss1_0"]
    assert "\thealthy\t" in result.stdout


@pytest.mark.parametrize(("args", "path"), [
    ((), SS + "/instanceView"),
    (("--instance-id", "3"), SS + "/virtualMachines/3/instanceView"),
])
def test_get_instance_view_of_the_set_or_one_instance(
        fake: FakeArm, cli: Callable[..., Result], args: tuple[str, ...], path: str) -> None:
    fake.on("GET", path, httpx.Response(200, json={"statuses": [
        {"code": "ProvisioningState/succeeded", "displayStatus": "Provisioning succeeded"}]}))
    result = cli("vmss", "get-instance-view", "-g", "rg1", "-n", "vmss1", *args, "-o", "table")
    assert result.exit_code == 0, result.output
    assert "ProvisioningState/succeeded" in result.stdout


def test_os_upgrade_history_follows_pages(fake: FakeArm, cli: Callable[..., Result]) -> None:
    link = f"{ENDPOINT}{SS}/osUpgradeHistory?api-version=2026-04-01&%24skiptoken=1"
    item = {"properties": {"runningStatus": {"code": "Completed"}, "startedBy": "Platform"}}
    fake.on("GET", SS + "/osUpgradeHistory",
            httpx.Response(200, json={"value": [item], "nextLink": link}),
            httpx.Response(200, json={"value": [item]}))
    result = cli("vmss", "get-os-upgrade-history", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


# -- vmss actions ---------------------------------------------------------------------------

def test_reimage_without_ids_reimages_everything_and_waits(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/reimage", httpx.Response(
        202, headers=fake.operation("op3", "InProgress", "Succeeded")))
    fake.on("GET", f"{OPS}/op3", httpx.Response(200, json={"status": "Succeeded"}))
    result = cli("vmss", "reimage", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert fake.sent("POST", SS + "/reimage")[0].content == b""


def test_update_instances_star_means_every_instance(fake: FakeArm, cli: Callable[..., Result]
                                                    ) -> None:
    fake.on("GET", SS + "/virtualMachines", httpx.Response(200, json={"value": [
        {"instanceId": "0"}, {"instanceId": "4"}]}))
    fake.on("POST", SS + "/manualupgrade", httpx.Response(202))
    result = cli("vmss", "update-instances", "-g", "rg1", "-n", "vmss1", "--instance-ids", "*")
    assert result.exit_code == 0, result.output
    assert fake.body("POST", SS + "/manualupgrade") == {"instanceIds": ["0", "4"]}


def test_instance_ids_take_several_values_az_style(fake: FakeArm, cli: Callable[..., Result]
                                                   ) -> None:
    fake.on("POST", SS + "/manualupgrade", httpx.Response(202))
    result = cli("vmss", "update-instances", "--instance-ids", "1", "2", "-g", "rg1", "-n",
                 "vmss1", "--no-wait")
    assert result.exit_code == 0, result.output
    assert fake.body("POST", SS + "/manualupgrade") == {"instanceIds": ["1", "2"]}


def test_set_protection_keeps_the_other_setting(fake: FakeArm, cli: Callable[..., Result]
                                                ) -> None:
    vm = {"instanceId": "2", "location": "westus", "properties": {"protectionPolicy": {
        "protectFromScaleIn": True, "protectFromScaleSetActions": False}}}
    fake.on("GET", SS + "/virtualMachines/2", httpx.Response(200, json=vm))
    fake.on("PUT", SS + "/virtualMachines/2",
            lambda r: httpx.Response(200, json=json.loads(r.content)))
    result = cli("vmss", "set-protection", "-g", "rg1", "-n", "vmss1", "--instance-id", "2",
                 "--protect-from-scale-set-actions")
    assert result.exit_code == 0, result.output
    assert fake.body("PUT", SS + "/virtualMachines/2")["properties"]["protectionPolicy"] == {
        "protectFromScaleIn": True, "protectFromScaleSetActions": True}
    none = cli("vmss", "set-protection", "-g", "rg1", "-n", "vmss1", "--instance-id", "2")
    assert none.exit_code == 2


def test_delete_waits_for_the_scale_set_to_go(fake: FakeArm, cli: Callable[..., Result]
                                              ) -> None:
    fake.on("DELETE", SS, httpx.Response(202, headers=fake.operation(
        "op4", "InProgress", "Succeeded")))
    result = cli("vmss", "delete", "-g", "rg1", "-n", "vmss1")
    assert (result.exit_code, result.stdout) == (0, "")
    assert len(fake.sent("GET", f"{OPS}/op4")) == 2


# -- rolling upgrades -----------------------------------------------------------------------

def test_start_waits_then_prints_the_runs_status(fake: FakeArm, cli: Callable[..., Result]
                                                 ) -> None:
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op5", "InProgress", "Succeeded")))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Completed", ok=4))
    result = cli("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Completed"


def test_start_no_wait_returns_at_once(fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op5", "InProgress")))
    result = cli("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1", "--no-wait")
    assert (result.exit_code, result.stdout) == (0, "")
    assert len(fake.requests) == 1


def test_start_wait_follows_the_run_and_fails_when_it_faults(
        fake: FakeArm, cli: Callable[..., Result], sleeps: list[float]) -> None:
    error = {"code": "MaxUnhealthyInstancePercentExceededInRollingUpgrade",
             "message": "40% of instances are unhealthy"}
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op6", "InProgress", "InProgress", "Failed", error=error)))
    fake.on("GET", SS + "/rollingUpgrades/latest",
            latest("RollingForward", ok=1, busy=1, pending=3),
            latest("RollingForward", ok=2, failed=1, busy=1, pending=1),
            latest("Faulted", ok=2, failed=2, pending=1, error=error))
    result = cli("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1", "--wait")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Faulted"
    assert ("error (MaxUnhealthyInstancePercentExceededInRollingUpgrade): 40% of instances "
            "are unhealthy") in result.stderr
    assert "succeeded 2 · failed 2 · in progress 0 · pending 1" in result.stderr
    assert sleeps == [1.0, 1.0, 1.0]


def test_start_wait_keeps_watching_a_run_the_operation_only_accepted(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op7", "Succeeded")))
    fake.on("GET", SS + "/rollingUpgrades/latest",
            latest("RollingForward", busy=2), latest("RollingForward", busy=2),
            latest("RollingForward", ok=1, busy=1), latest("Completed", ok=2))
    result = cli("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1", "--wait")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["progress"]["successfulInstanceCount"] == 2


def test_cancel_with_nothing_running_reports_the_conflict(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/rollingUpgrades/cancel", httpx.Response(409, json={"error": {
        "code": "OperationNotAllowed",
        "message": "There is no ongoing Rolling Upgrade to cancel for Virtual Machine Scale "
                   "Set 'vmss1'."}}))
    result = cli("vmss", "rolling-upgrade", "cancel", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error (OperationNotAllowed): There is no ongoing")


def test_get_latest_as_a_table(fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("RollingForward", ok=3, pending=2))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1",
                 "-o", "table")
    assert result.exit_code == 0, result.output
    header, _, row = result.stdout.splitlines()[:3]
    assert header.split()[:4] == ["Status", "LastAction", "Successful", "Failed"]
    assert row.split()[:4] == ["RollingForward", "Start", "3", "0"]


# -- images ---------------------------------------------------------------------------------

IMAGES = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus"


def _catalog(fake: FakeArm) -> None:
    offers = f"{IMAGES}/publishers/Canonical/artifacttypes/vmimage/offers"
    fake.on("GET", f"{IMAGES}/publishers", httpx.Response(200, json=[
        {"name": "Canonical"}, {"name": "MicrosoftWindowsServer"}]))
    fake.on("GET", offers, httpx.Response(200, json=[{"name": "ubuntu"}]))
    fake.on("GET", f"{offers}/ubuntu/skus", httpx.Response(200, json=[
        {"name": "server"}, {"name": "minimal"}]))

    def versions(request: httpx.Request) -> httpx.Response:
        names = ["1.9.0", "1.10.0"]  # oldest first, as dotted integers
        if request.url.params.get("$orderby") == "name desc":
            names.reverse()
        top = request.url.params.get("$top")
        return httpx.Response(200, json=[{"name": n} for n in names[:int(top) if top else None]])

    for sku in ("server", "minimal"):
        fake.on("GET", f"{offers}/ubuntu/skus/{sku}/versions", versions)


def test_image_list_shows_the_newest_version_per_sku(fake: FakeArm, cli: Callable[..., Result]
                                                     ) -> None:
    _catalog(fake)
    result = cli("vm", "image", "list", "--publisher", "canon", "--sku", "server")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{
        "publisher": "Canonical", "offer": "ubuntu", "sku": "server", "version": "1.10.0",
        "urn": "Canonical:ubuntu:server:1.10.0"}]
    versions = [r for r in fake.requests if r.url.path.endswith("/versions")]
    assert versions[0].url.params["$orderby"] == "name desc"
    assert versions[0].url.params["$top"] == "1"


def test_image_list_all_shows_every_version(fake: FakeArm, cli: Callable[..., Result]) -> None:
    _catalog(fake)
    result = cli("vm", "image", "list", "-p", "Canonical", "-f", "ubuntu", "--all", "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[4] for line in result.stdout.splitlines()] == [
        "Canonical:ubuntu:server:1.9.0", "Canonical:ubuntu:server:1.10.0",
        "Canonical:ubuntu:minimal:1.9.0", "Canonical:ubuntu:minimal:1.10.0"]


def test_publish_an_unhealthy_version_for_the_simulation(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    path = f"{IMAGES}/publishers/Canonical/artifacttypes/vmimage/offers/ubuntu/skus/server/" \
           "versions/1.2.0"
    fake.on("PUT", path, lambda r: httpx.Response(201, json={
        "name": "1.2.0", "location": "westus", **json.loads(r.content)}))
    result = cli("vm", "image", "publish", "-p", "Canonical", "-f", "ubuntu", "-s", "server",
                 "--version", "1.2.0", "--os-type", "linux", "--simulate-unhealthy",
                 "-o", "table")
    assert result.exit_code == 0, result.output
    assert fake.body("PUT", path) == {"location": "westus", "properties": {
        "osDiskImage": {"operatingSystem": "Linux"}, "simulation": {"healthy": False}}}
    assert "False" in result.stdout.splitlines()[2]



# -- the same verbs against the real API, in process ------------------------------------------

class InProcess(httpx.BaseTransport):
    """A sync httpx transport onto an ASGI app (one event loop per request)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def roundtrip() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers,
                                  content=content, request=request)
        return asyncio.run(roundtrip())


def test_the_verbs_drive_the_real_api_end_to_end(sqlite_store: Any, tmp_path: Path) -> None:
    """Create, update, upgrade, list and delete through the real routes, on a virtual clock.

    Every poll's sleep moves the world on to its next event, so waits end at once.
    """
    api = pytest.importorskip("scaleset.api.app")  # until the whole server has landed
    from scaleset.api.context import ApiContext
    from scaleset.clock import VirtualClock
    from scaleset.drivers.simulated import SimulatedDriver
    from scaleset.reconcile.shell import Reconciler

    clock = VirtualClock()
    driver = SimulatedDriver(start=clock.now())
    reconciler = Reconciler(store=sqlite_store, driver=driver, clock=clock)

    def published(row: Any) -> None:  # what serve does for --simulate-unhealthy versions
        if (row.properties.get("simulation") or {}).get("healthy") is False:
            driver.bad_images.add(row.version)

    app = api.create_app(ApiContext(store=sqlite_store, clock=clock, auth_required=False,
                                    page_size=1, on_image_published=published))
    wakes: dict[str, Any] = {}

    def step(seconds: float) -> None:
        """The world's next event (or ``seconds`` on), then one pass per scale set."""
        from datetime import timedelta
        candidates = [t for t in (driver.next_event_time(), *wakes.values())
                      if t is not None and t > clock.now()]
        clock.advance_to(min(candidates) if candidates else clock.now()
                         + timedelta(seconds=seconds))
        with sqlite_store.transaction() as tx:
            ids = tx.scale_set_ids()
        for sid in ids:
            wakes[sid] = reconciler.reconcile(sid).wake_at

    factory = ClientFactory(transport=InProcess(app), sleep=step, environ={
        "HOME": str(tmp_path), "SCALESET_ENDPOINT": "http://testserver", "SCALESET_TOKEN": "t"})

    def run(*args: str) -> Result:
        apps = {"vmss": vmss.app, "vm": image.app, "network": network.app}
        result = CliRunner().invoke(apps[args[0]], list(args[1:]), obj=factory)
        assert result.exit_code == 0, result.output
        return result

    image_flags = ("-p", "Canonical", "-f", "ubuntu", "-s", "server")
    run("vm", "image", "publish", *image_flags, "--version", "1.0.0")
    run("network", "lb", "create", "-g", "rg1", "-n", "lb1")
    probe = json.loads(run("network", "lb", "probe", "create", "-g", "rg1", "--lb-name", "lb1",
                           "-n", "http", "--protocol", "http", "--port", "80", "--path",
                           "/health", "--interval", "5").stdout)
    created = json.loads(run("vmss", "create", "-g", "rg1", "-n", "vmss1", "--image",
                             "Canonical:ubuntu:server:latest", "--instance-count", "3",
                             "--upgrade-policy-mode", "Rolling", "--health-probe",
                             probe["id"]).stdout)
    assert created["properties"]["provisioningState"] == "Succeeded"
    run("vmss", "create", "-g", "rg1", "-n", "vmss2", "--image", "Canonical:ubuntu:server",
        "--instance-count", "1", "--no-wait")
    updated = json.loads(run("vmss", "update", "-g", "rg1", "-n", "vmss1",
                             "--set", "sku.capacity=4").stdout)
    assert updated["sku"]["capacity"] == 4
    names = run("vmss", "list", "-g", "rg1", "-o", "tsv").stdout  # one per page
    assert [line.split("\t")[0] for line in names.splitlines()] == ["vmss1", "vmss2"]

    run("vm", "image", "publish", *image_flags, "--version", "1.1.0")
    final = json.loads(run("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1",
                           "--wait").stdout)
    assert final["properties"]["runningStatus"]["code"] == "Completed"
    instances = json.loads(run("vmss", "list-instances", "-g", "rg1", "-n", "vmss1").stdout)
    assert {i["properties"]["storageProfile"]["imageReference"]["exactVersion"]
            for i in instances} == {"1.1.0"}
    history = json.loads(run("vmss", "get-os-upgrade-history", "-g", "rg1", "-n",
                             "vmss1").stdout)
    assert history[0]["properties"]["runningStatus"]["code"] == "Completed"
    assert "Canonical:ubuntu:server:1.1.0" in run("vm", "image", "list", "-o", "tsv").stdout

    run("vm", "image", "publish", *image_flags, "--version", "1.2.0", "--simulate-unhealthy")
    faulted = CliRunner().invoke(vmss.app, ["rolling-upgrade", "start", "-g", "rg1", "-n",
                                            "vmss1", "--wait"], obj=factory)
    assert faulted.exit_code == 1, faulted.output
    assert json.loads(faulted.stdout)["properties"]["runningStatus"]["code"] == "Faulted"
    assert faulted.stderr.splitlines()[-1].startswith("error (")
    run("vmss", "delete", "-g", "rg1", "-n", "vmss1")
    gone = CliRunner().invoke(vmss.app, ["show", "-g", "rg1", "-n", "vmss1"], obj=factory)
    assert (gone.exit_code, gone.stderr.split(":")[0]) == (1, "error (ResourceNotFound)")


def test_image_publish_from_a_url_under_the_short_verb(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    path = f"{IMAGES}/publishers/Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/" \
           "versions/1.1.0"
    fake.on("PUT", path, lambda r: httpx.Response(201, json={
        "name": "1.1.0", "location": "westus", **json.loads(r.content)}))
    result = cli("image", "publish", "-p", "Contoso", "-f", "WebApp", "-s", "1",
                 "--version", "1.1.0", "--source-uri", "https://example.test/w.tar.gz")
    assert result.exit_code == 0, result.output
    # No --os-type: the image's own image.json decides on the server.
    assert fake.body("PUT", path) == {"location": "westus", "properties": {
        "source": {"uri": "https://example.test/w.tar.gz"}}}


# -- rolling-upgrade approve ------------------------------------------------------------

def test_approve_waits_for_the_run_then_prints_its_status(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/approveRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op9", "InProgress", "Succeeded")))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Completed", ok=4))
    result = cli("vmss", "rolling-upgrade", "approve", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Completed"
    assert fake.sent("POST", SS + "/approveRollingUpgrade")[0].content == b""


def test_approve_some_instances_without_waiting(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/approveRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op9", "InProgress")))
    result = cli("vmss", "rolling-upgrade", "approve", "-g", "rg1", "-n", "vmss1",
                 "--instance-ids", "0", "1", "--no-wait")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "rolling-upgrade get-latest -g rg1 -n vmss1" in result.stderr
    assert fake.body("POST", SS + "/approveRollingUpgrade") == {"instanceIds": ["0", "1"]}


def test_approve_with_nothing_deferred_reports_the_conflict(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/approveRollingUpgrade", httpx.Response(409, json={"error": {
        "code": "OperationNotAllowed",
        "message": "Nothing to approve on scale set 'vmss1': osRollingUpgradeDeferral is off"}}))
    result = cli("vmss", "rolling-upgrade", "approve", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error (OperationNotAllowed): Nothing to approve")


@pytest.mark.parametrize(("assignment", "words"), [
    ("upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercnt=50",
     ["'maxBatchInstancePercnt'", "properties.upgradePolicy.rollingUpgradePolicy",
      "did you mean maxBatchInstancePercent"]),
    ("upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrad=true",
     ["did you mean enableAutomaticOSUpgrade"]),
    ("upgradePolcy.mode=Rolling", ["'upgradePolcy'", "did you mean upgradePolicy"]),
    ("sku.capacty=5", ["'capacty' in sku", "did you mean capacity"]),
])
def test_update_refuses_a_path_the_model_does_not_have_and_sends_nothing(
        fake: FakeArm, cli: Callable[..., Result], assignment: str, words: list[str]) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set(), headers={"ETag": '"7"'}))
    result = cli("vmss", "update", "-g", "rg1", "-n", "vmss1", "--set", assignment)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split()).replace("│", "")
    flat = " ".join(flat.split())
    for word in words:
        assert word in flat, flat
    assert fake.sent("PATCH", SS) == []


@pytest.mark.parametrize(("assignment", "patch"), [
    # A typed field GET left out (no rollingUpgradePolicy in the body).
    ("upgradePolicy.rollingUpgradePolicy.maxSurge=true",
     {"properties": {"upgradePolicy": {"rollingUpgradePolicy": {"maxSurge": True}}}}),
    ("tags.team=web", {"tags": {"team": "web"}}),
    # An extension's settings are free-form.
    ("virtualMachineProfile.extensionProfile.extensions[0].settings.requestPath=/health",
     {"properties": {"virtualMachineProfile": {"extensionProfile": {"extensions": [
         {"name": "health", "properties": {
             "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
             "settings": {"port": 80, "requestPath": "/health"}}}]}}}}),
])
def test_update_accepts_typed_fields_free_form_maps_and_tags(
        fake: FakeArm, cli: Callable[..., Result], assignment: str, patch: dict[str, Any]
) -> None:
    fake.on("GET", SS, httpx.Response(200, json=scale_set(), headers={"ETag": '"7"'}))
    fake.on("PATCH", SS, httpx.Response(200, json=scale_set(),
                                        headers=fake.operation("op3", "Succeeded")))
    result = cli("vmss", "update", "-g", "rg1", "-n", "vmss1", "--set", assignment)
    assert result.exit_code == 0, result.output
    assert fake.body("PATCH", SS) == patch
