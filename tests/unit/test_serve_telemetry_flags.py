"""``scaleset serve --log-format/--log-level/--metrics-token-file`` and their variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaleset.cli.app import app
from scaleset.server import main as server_main
from scaleset.server.settings import ServeSettings

TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ServeSettings]:
    """The settings ``serve`` would run with (the server itself is not started)."""
    seen: list[ServeSettings] = []
    monkeypatch.setattr(server_main, "serve", lambda settings, **_: seen.append(settings))
    for name in ("SCALESET_LOG_FORMAT", "SCALESET_LOG_LEVEL", "SCALESET_METRICS_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    return seen


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    return result.exit_code, result.output


def test_text_logs_at_info_and_no_metrics_token_by_default(started: list[ServeSettings]) -> None:
    assert serve()[0] == 0
    assert (started[0].log_format, started[0].log_level, started[0].metrics_token) == \
        ("text", "info", None)


def test_the_format_and_level_by_flag_or_variable(started: list[ServeSettings]) -> None:
    assert serve("--log-format", "json", "--log-level", "debug")[0] == 0
    assert serve(env={"SCALESET_LOG_FORMAT": "json", "SCALESET_LOG_LEVEL": "warning"})[0] == 0
    assert [(s.log_format, s.log_level) for s in started] == [("json", "debug"),
                                                              ("json", "warning")]


@pytest.mark.parametrize(("args", "named"), [
    (("--log-format", "xml"), "--log-format"),
    (("--log-level", "loud"), "--log-level"),
])
def test_an_unknown_format_or_level_is_refused_by_name(
        started: list[ServeSettings], args: tuple[str, ...], named: str) -> None:
    code, output = serve(*args)
    assert code == 2 and named in output and not started


def test_the_metrics_token_is_read_from_its_file_and_never_shown(
        started: list[ServeSettings], tmp_path: Path) -> None:
    path = tmp_path / "metrics-token"
    path.write_text(f"  {TOKEN}\n")
    assert serve("--metrics-token-file", str(path))[0] == 0
    assert serve(env={"SCALESET_METRICS_TOKEN_FILE": str(path)})[0] == 0
    assert [s.metrics_token for s in started] == [TOKEN, TOKEN]
    assert TOKEN not in repr(started[0])


@pytest.mark.parametrize("content", ["", "short", "has a space inside it", "x" * 600,
                                     "caf\u00e9-token-with-accent"])
def test_a_metrics_token_file_without_one_good_token_is_refused(
        started: list[ServeSettings], tmp_path: Path, content: str) -> None:
    path = tmp_path / "metrics-token"
    path.write_text(content)
    code, output = serve("--metrics-token-file", str(path))
    assert code == 2 and "--metrics-token-file" in output and not started


def test_a_missing_metrics_token_file_is_refused(started: list[ServeSettings],
                                                 tmp_path: Path) -> None:
    code, output = serve("--metrics-token-file", str(tmp_path / "absent"))
    assert code == 2 and "cannot read" in output and not started
