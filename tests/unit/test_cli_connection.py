"""The connection options: declared once, accepted before, between and after the verb."""

from __future__ import annotations

import doctest
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from scaleset.cli import app as root
from scaleset.cli import connection, vmss
from scaleset.cli.client import ClientFactory

SUB = "00000000-0000-0000-0000-000000000000"


class Recorder:
    """Answers every request with an empty scale set listing and remembers what it saw."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"value": []})


def run(app: typer.Typer, args: list[str], tmp_path: Path, recorder: Recorder,
        environ: dict[str, str] | None = None) -> Result:
    factory = ClientFactory(transport=httpx.MockTransport(recorder), sleep=lambda _: None,
                            environ={"HOME": str(tmp_path), **(environ or {})})
    return CliRunner().invoke(app, args, obj=factory)


def test_the_examples_in_the_docstring_hold() -> None:
    result = doctest.testmod(connection)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("args", [
    ["--server", "https://cp.test:1", "--token", "t1", "vmss", "list", "-g", "rg"],
    ["vmss", "--server", "https://cp.test:1", "list", "--token", "t1", "-g", "rg"],
    ["vmss", "list", "-g", "rg", "--server", "https://cp.test:1", "--token", "t1"],
    ["vmss", "list", "-g", "rg", "--endpoint=https://cp.test:1", "--token=t1"],
], ids=["before", "between", "after", "older-name-with-equals"])
def test_connection_options_work_wherever_they_stand(args: list[str], tmp_path: Path) -> None:
    recorder = Recorder()
    result = run(root.app, args, tmp_path, recorder)
    assert result.exit_code == 0, result.output
    [request] = recorder.requests
    assert request.url.host == "cp.test"
    assert request.url.port == 1
    assert request.headers["Authorization"] == "Bearer t1"


def test_the_last_one_given_wins_and_a_nested_group_does_not_undo_the_root(
        tmp_path: Path) -> None:
    recorder = Recorder()
    result = run(root.app, ["--server", "https://first.test", "--subscription", "sub-a",
                            "vmss", "list", "-g", "rg", "--server", "https://second.test",
                            "--token", "t"], tmp_path, recorder)
    assert result.exit_code == 0, result.output
    [request] = recorder.requests
    assert request.url.host == "second.test"
    assert request.url.path.startswith("/subscriptions/sub-a/")


def test_a_sub_app_on_its_own_takes_them_after_a_nested_verb(tmp_path: Path) -> None:
    recorder = Recorder()
    result = run(vmss.app, ["rolling-upgrade", "get-latest", "-g", "rg", "-n", "ss",
                            "--server", "https://cp.test", "--token", "t"], tmp_path, recorder)
    assert result.exit_code == 0, result.output
    assert [r.url.host for r in recorder.requests] == ["cp.test"]


def test_flags_beat_the_environment_and_both_names_of_the_server_variable_work(
        tmp_path: Path) -> None:
    for env, host in [({"SCALESET_SERVER": "https://new.test"}, "new.test"),
                      ({"SCALESET_ENDPOINT": "https://old.test"}, "old.test"),
                      ({"SCALESET_SERVER": "https://new.test",
                        "SCALESET_ENDPOINT": "https://old.test"}, "new.test")]:
        recorder = Recorder()
        result = run(root.app, ["vmss", "list", "--token", "t"], tmp_path, recorder,
                     environ=env)
        assert result.exit_code == 0, result.output
        assert recorder.requests[0].url.host == host
    recorder = Recorder()
    result = run(root.app, ["vmss", "list", "--server", "https://flag.test", "--token", "t"],
                 tmp_path, recorder, environ={"SCALESET_SERVER": "https://env.test"})
    assert result.exit_code == 0, result.output
    assert recorder.requests[0].url.host == "flag.test"


def test_an_option_after_double_dash_is_left_alone() -> None:
    assert connection.lift(["show", "--", "--server", "x"], takes_value={"--server"},
                           flags_only=set()) == ["show", "--", "--server", "x"]


def test_a_connection_option_without_its_value_is_a_usage_error(tmp_path: Path) -> None:
    recorder = Recorder()
    result = run(root.app, ["vmss", "list", "--server"], tmp_path, recorder)
    assert result.exit_code == 2
    assert "--server" in result.output
    assert recorder.requests == []


def test_a_verbs_help_says_where_the_connection_options_are(tmp_path: Path) -> None:
    result = CliRunner().invoke(root.app, ["vmss", "rolling-upgrade", "start", "--help"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--server" in result.output


def test_no_verb_declares_the_connection_options_itself() -> None:
    # They are declared once, on the groups' callback; a verb that took its own --server
    # would shadow it silently (the group lifts the option before the verb sees it).
    command = typer.main.get_command(root.app)
    names = {"--server", "--endpoint", "--token", "--ca-file", "--subscription"}
    pending = [command]
    while pending:
        current = pending.pop()
        subcommands = getattr(current, "commands", None)
        if subcommands is not None:
            pending.extend(subcommands.values())
            continue
        declared = {opt for p in current.params for opt in getattr(p, "opts", [])}
        assert not declared & names, current.name
