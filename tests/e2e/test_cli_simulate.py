"""``scaleset simulate`` as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "scenarios"
JSON_KEYS = {"status", "error", "batches", "makespanSeconds", "successfulInstanceCount",
             "failedInstanceCount", "rolledBackInstanceCount", "lowerBoundSeconds"}


def _script() -> str:
    beside = Path(sys.executable).parent / "scaleset"
    if beside.exists():
        return str(beside)
    found = shutil.which("scaleset")
    if found is None:
        pytest.skip("the scaleset console script is not installed (pip install -e .)")
    return found


def scaleset(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([_script(), *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


def simulate_json(*args: str | Path) -> dict[str, Any]:
    """The summary of ``scaleset simulate ... --json`` (its last stdout line)."""
    done = scaleset("simulate", *args, "--json")
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def write(tmp_path: Path, scenario: dict[str, Any] | str, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(scenario if isinstance(scenario, str) else json.dumps(scenario))
    return path


def test_the_default_scenario_completes_in_five_batches_of_two_at_the_lower_bound() -> None:
    summary = simulate_json()

    assert JSON_KEYS <= summary.keys()
    assert summary["status"] == "Completed"
    assert summary["error"] is None
    assert [len(b["instances"]) for b in summary["batches"]] == [2, 2, 2, 2, 2]
    assert sorted(i for b in summary["batches"] for i in b["instances"]) == sorted(
        str(i) for i in range(10))
    assert all({"instances", "startSeconds", "endSeconds"} <= b.keys()
               for b in summary["batches"])
    assert summary["successfulInstanceCount"] == 10
    assert summary["failedInstanceCount"] == 0
    assert summary["rolledBackInstanceCount"] == 0
    assert summary["makespanSeconds"] == summary["lowerBoundSeconds"] == 550


def test_flags_override_the_scenario_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"scaleSet": {"sku": {"capacity": 4}}, "seed": 1,
                            "faults": {"badImage": True}})
    assert simulate_json(path)["status"] == "Faulted"

    summary = simulate_json(path, "--instances", "20", "--good-image", "--max-batch-percent", "50",
                            "--max-unhealthy-percent", "50")

    assert summary["status"] == "Completed"
    assert summary["successfulInstanceCount"] == 20
    assert [len(b["instances"]) for b in summary["batches"]] == [10, 10]
    assert summary["makespanSeconds"] == summary["lowerBoundSeconds"] == 220


def test_never_healthy_flag_makes_every_upgrade_fail() -> None:
    summary = simulate_json("--never-healthy", "1.0")

    assert summary["status"] == "Faulted"
    assert len(summary["batches"]) == 1
    assert summary["rolledBackInstanceCount"] == 2


def test_the_same_seed_gives_the_same_summary() -> None:
    args = ("--instances", "30", "--never-healthy", "0.1", "--seed", "3")
    assert simulate_json(*args) == simulate_json(*args)


def test_a_different_seed_with_faults_can_give_a_different_rollout() -> None:
    common = ("--instances", "30", "--never-healthy", "0.1")
    first = simulate_json(*common, "--seed", "0")
    second = simulate_json(*common, "--seed", "1")
    assert first["seed"] == 0 and second["seed"] == 1
    assert (first["makespanSeconds"], first["failedInstanceCount"]) != (
        second["makespanSeconds"], second["failedInstanceCount"])


def test_a_bad_image_on_fifty_instances_faults_and_rolls_back_the_first_batch() -> None:
    summary = simulate_json("--instances", "50", "--bad-image")

    assert summary["status"] == "Faulted"
    assert summary["error"]["code"] == (
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade")
    assert len(summary["batches"]) == 1
    assert len(summary["batches"][0]["instances"]) == 10
    assert summary["rolledBackInstanceCount"] == 10
    assert summary["successfulInstanceCount"] == 0


def test_too_many_unhealthy_instances_at_start_fault_before_any_batch(tmp_path: Path) -> None:
    path = write(tmp_path, {"faults": {"unhealthyAtStart": ["1", "4", "7"]}})

    summary = simulate_json(path)

    assert summary["status"] == "Faulted"
    assert summary["error"]["code"] == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert summary["batches"] == []
    assert summary["successfulInstanceCount"] == 0


def test_a_run_started_by_a_user_never_rolls_back() -> None:
    summary = simulate_json("--bad-image", "--started-by", "User")

    assert summary["status"] == "Faulted"
    assert summary["failedInstanceCount"] == 2
    assert summary["rolledBackInstanceCount"] == 0


@pytest.mark.parametrize(("scenario", "field"), [
    ({"seeed": 3}, "seeed"),
    ({"faults": {"neverHealtyProbability": 0.5}}, "neverHealtyProbability"),
    ({"scaleSet": {"properties": {"upgradePolicy": {"rollingUpgradePolicy": {
        "maxBatchInstancePercnt": 50}}}}}, "maxBatchInstancePercnt"),
    ({"scaleSet": {"sku": {"capacty": 5}}}, "capacty"),
    ({"scaleSet": {"properties": {"virtualMachineProfile": {"extensionProfile": {
        "extensions": [{"name": "s", "properties": {"publisher": "Microsoft.Azure.Extensions",
                                                    "type": "CustomScript",
                                                    "setings": {}}}]}}}}}, "setings"),
])
def test_a_typo_in_the_scenario_exits_2_and_names_the_field(
        tmp_path: Path, scenario: dict[str, Any], field: str) -> None:
    done = scaleset("simulate", write(tmp_path, scenario), "--json")

    assert done.returncode == 2
    assert field in done.stderr
    assert done.stdout.strip() == ""


def test_free_form_settings_and_tags_in_the_scenario_take_any_key(tmp_path: Path) -> None:
    summary = simulate_json(write(tmp_path, {"scaleSet": {
        "tags": {"anyKey": "x"}, "sku": {"capacity": 2},
        "properties": {"virtualMachineProfile": {"extensionProfile": {"extensions": [
            {"name": "s", "properties": {"publisher": "Microsoft.Azure.Extensions",
                                         "type": "CustomScript",
                                         "settings": {"anythingGoes": 1}}}]}}}}}))
    assert summary["status"] == "Completed"


def test_malformed_json_exits_2(tmp_path: Path) -> None:
    done = scaleset("simulate", write(tmp_path, '{"seed": 3,'), "--json")

    assert done.returncode == 2
    assert "not JSON" in done.stderr
    assert done.stdout.strip() == ""


def test_the_human_output_shows_batches_and_ends_with_the_status() -> None:
    done = scaleset("simulate", "--bad-image", "--instances", "20")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Batches" in out
    assert "0, 5, 10, 15" in out
    status_lines = [line for line in out.splitlines() if line.startswith("Status:")]
    assert status_lines == ["Status: Faulted"]
    assert "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade" in out
    assert out.strip().splitlines()[-1].startswith("Makespan")
    assert not out.lstrip().startswith("{")


def test_the_example_bad_image_scenario_runs() -> None:
    path = EXAMPLES / "bad-image-50.json"
    summary = simulate_json(path)

    assert summary["status"] in {"Completed", "Faulted"}
    total = (summary["successfulInstanceCount"] + summary["failedInstanceCount"]
             + summary["pendingInstanceCount"])
    assert total == 50
    assert summary == simulate_json(path)  # the example is reproducible
