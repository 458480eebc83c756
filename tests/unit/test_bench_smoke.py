"""The engine and fleet benchmarks run at a tiny size and print their fields.

No timing is asserted: these only keep ``bench/engine.py`` and ``bench/serve_fleet.py``
working as the engine changes under them.
"""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _last_json(args: list[str], timeout: float) -> list[dict[str, object]]:
    result = subprocess.run([sys.executable, *args], cwd=BENCH, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("machine: "), result.stdout
    parsed: list[dict[str, object]] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_engine_bench_prints_the_engine_the_raw_replay_and_the_writes() -> None:
    [row] = _last_json(["engine.py", "--sizes", "50"], timeout=120)
    assert row["instances"] == 50
    for key in ("upgradesPerSecond", "upgradesPerSecondMin", "rawReplayUpgradesPerSecond",
                "rawToEngineRatio", "rowWritesPerUpgrade", "rowWritesPerUpgradeWhole",
                "statementsPerUpgrade", "peakRssMB", "makespanSeconds", "lowerBoundSeconds",
                "wallSeconds", "rounds", "batches"):
        assert key in row, key
    assert isinstance(row["rowWrites"], int) and row["rowWrites"] > 0


def test_fleet_bench_prints_idle_cpu_round_time_and_the_rollout() -> None:
    rows = _last_json(["serve_fleet.py", "--sets", "0,2", "--rollout", "2", "--seconds", "1",
                       "--settle", "0", "--round-wait", "0", "--batch-percent", "50",
                       "--rollout-wait", "60"], timeout=240)
    assert [r["sets"] for r in rows] == [0, 2]
    for row in rows:
        for key in ("idleCpuPercent", "roundMs", "cpuMsPerRound", "passesPerRound",
                    "createSeconds", "readySeconds"):
            assert key in row, key
    rollout = rows[1]["rollout"]
    assert isinstance(rollout, dict)
    assert rollout["runs"] == 2 and rollout["timedOut"] is False
    assert rollout["lowerBoundSeconds"] == 1.6
