"""``scaleset serve`` rollout timing flags and variables: preset, overrides, bad values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from scaleset.cli.app import app
from scaleset.server import main as server_main
from scaleset.server.settings import ServeSettings
from scaleset.upgrade.timing import PRESETS, RolloutTiming


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ServeSettings]:
    """The settings ``serve`` would run with (the server itself is not started)."""
    seen: list[ServeSettings] = []
    monkeypatch.setattr(server_main, "serve", lambda settings, **_: seen.append(settings))
    for name in ("SCALESET_ROLLOUT_TIMING", "SCALESET_FIRST_ROLLOUT_DELAY",
                 "SCALESET_ROLLOUT_DELAY", "SCALESET_ROLLOUT_JITTER"):
        monkeypatch.delenv(name, raising=False)
    return seen


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    return result.exit_code, result.output


def test_by_default_automatic_runs_start_without_delay(started: list[ServeSettings]) -> None:
    assert serve()[0] == 0
    assert started[0].rollout_timing == RolloutTiming()


def test_the_azure_preset_by_flag_or_variable(started: list[ServeSettings]) -> None:
    assert serve("--rollout-timing", "azure")[0] == 0
    assert serve(env={"SCALESET_ROLLOUT_TIMING": "Azure"})[0] == 0
    assert [s.rollout_timing for s in started] == [PRESETS["azure"]] * 2
    assert PRESETS["azure"] == RolloutTiming(timedelta(hours=3), timedelta(minutes=30),
                                             timedelta(minutes=30))


def test_explicit_delays_override_the_preset(started: list[ServeSettings]) -> None:
    code, output = serve("--rollout-timing", "azure", "--rollout-delay", "PT5M",
                         "--rollout-jitter", "90",
                         env={"SCALESET_FIRST_ROLLOUT_DELAY": "PT1H"})
    assert code == 0, output
    assert started[0].rollout_timing == RolloutTiming(
        first_rollout_delay=timedelta(hours=1), rollout_delay=timedelta(minutes=5),
        rollout_jitter=timedelta(seconds=90))


@pytest.mark.parametrize(("args", "env", "names"), [
    (("--rollout-timing", "aws"), None, ("--rollout-timing", "'aws'", "immediate, azure")),
    (("--rollout-delay", "soon"), None, ("--rollout-delay", "'soon'", "PT30M")),
    (("--rollout-jitter", "-5"), None, ("--rollout-jitter", "negative")),
    ((), {"SCALESET_FIRST_ROLLOUT_DELAY": "P1M"}, ("--first-rollout-delay", "months")),
])
def test_a_bad_value_is_refused_naming_the_flag(started: list[ServeSettings],
                                                args: tuple[str, ...],
                                                env: dict[str, str] | None,
                                                names: tuple[str, ...]) -> None:
    code, output = serve(*args, env=env)
    assert code == 2 and not started
    flat = " ".join(output.replace("│", " ").split())  # a wrapped Rich panel, unwrapped
    for name in names:
        assert name in flat, output
