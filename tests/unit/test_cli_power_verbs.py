# ruff: noqa: F811  (the fixtures of test_cli_client are imported, then requested by name)
"""scaleset vmss start|stop|restart|deallocate|redeploy|delete-instances: what they send
(az's paths, bodies and flags) and that they follow the operation to its end."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from typer.testing import Result

from tests.unit.test_cli_client import SS, FakeArm, cli, client, fake, sleeps  # noqa: F401


@pytest.mark.parametrize(("args", "path", "body"), [
    (("start",), "/start", None),
    (("start", "--instance-ids", "0", "3"), "/start", {"instanceIds": ["0", "3"]}),
    (("stop",), "/poweroff", {"instanceIds": ["*"]}),
    (("restart", "--instance-ids", "2"), "/restart", {"instanceIds": ["2"]}),
    (("deallocate",), "/deallocate", None),
    (("redeploy", "--instance-ids", "1"), "/redeploy", {"instanceIds": ["1"]}),
    (("delete-instances", "--instance-ids", "4", "5"), "/delete", {"instanceIds": ["4", "5"]}),
])
def test_verbs_send_what_az_sends_and_wait(fake: FakeArm, cli: Callable[..., Result],
                                           args: tuple[str, ...], path: str,
                                           body: dict[str, list[str]] | None) -> None:
    fake.on("POST", SS + path, httpx.Response(
        202, headers=fake.operation("op9", "InProgress", "Succeeded")))
    result = cli("vmss", args[0], "-g", "rg1", "-n", "vmss1", *args[1:])
    assert result.exit_code == 0, result.output
    sent = fake.sent("POST", SS + path)
    assert len(sent) == 1
    if body is None:
        assert sent[0].content == b""
    else:
        assert fake.body("POST", SS + path) == body
    # It waited: polled past InProgress to Succeeded.
    assert len(fake.sent("GET", SS.split("/resourceGroups")[0] +
                         "/providers/Microsoft.Compute/locations/westus/operations/op9")) >= 2


def test_stop_skip_shutdown_is_a_query_parameter(fake: FakeArm,
                                                 cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/poweroff", httpx.Response(202))
    result = cli("vmss", "stop", "-g", "rg1", "-n", "vmss1", "--skip-shutdown", "--no-wait")
    assert result.exit_code == 0, result.output
    (request,) = fake.sent("POST", SS + "/poweroff")
    assert request.url.params["skipShutdown"] == "true"


def test_delete_instances_needs_instance_ids(fake: FakeArm, cli: Callable[..., Result]) -> None:
    result = cli("vmss", "delete-instances", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code != 0
    assert "--instance-ids" in result.output
    assert fake.sent("POST", SS + "/delete") == []


def test_a_refused_verb_prints_the_servers_error(fake: FakeArm,
                                                 cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/start", httpx.Response(400, json={"error": {
        "code": "InvalidParameter", "target": "instanceIds",
        "message": "The provided instanceId 9 is not an active Virtual Machine Scale Set VM "
                   "instanceId."}}))
    result = cli("vmss", "start", "-g", "rg1", "-n", "vmss1", "--instance-ids", "9")
    assert result.exit_code != 0
    assert "instanceId 9 is not an active" in result.output
