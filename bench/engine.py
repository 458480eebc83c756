"""Engine benchmark: simulated rollouts of 1,000 / 10,000 / 100,000 instances.

Zero-latency simulated instances, persistence on (SQLite in a temporary
file, the embedded default), the real shell and store. Each fleet size runs
in its own process so its peak memory is its own. Prints a table, the
machine it ran on, and, as the last line, a JSON list with one object per
fleet size: instances, upgradesPerSecond, peakRssMB, makespanSeconds,
lowerBoundSeconds (plus wallSeconds and rounds).

    python bench/engine.py                 # 1k, 10k, 100k
    python bench/engine.py --sizes 1000    # just one size
    python bench/engine.py --timings       # 60/30/20 s virtual latencies instead of zero
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one(size: int, timings: bool) -> dict[str, object]:
    from scaleset.sim.runner import simulate
    from scaleset.sim.scenario import Scenario

    scenario: dict[str, object] = {"scaleSet": {"sku": {"capacity": size}}, "seed": 1}
    if not timings:
        scenario["timings"] = {"reimageSeconds": 0, "bootSeconds": 0, "healthySeconds": 0}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        start = time.perf_counter()
        report = simulate(Scenario.model_validate(scenario), database_url=url)
        wall = time.perf_counter() - start
    assert report.status == "Completed", report.status
    assert report.successful == size, (report.successful, size)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "instances": size,
        "upgradesPerSecond": round(report.successful / wall, 1),
        "peakRssMB": round(peak_kb / 1024, 1),
        "makespanSeconds": report.makespan_seconds,
        "lowerBoundSeconds": report.lower_bound_seconds,
        "wallSeconds": round(wall, 2),
        "rounds": report.rounds,
        "batches": len(report.batches),
    }


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--timings", action="store_true",
                        help="use 60/30/20 s virtual latencies instead of zero")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.timings)))
        return
    results = []
    print(f"machine: {_machine()}")
    print(f"{'instances':>10} {'wall s':>8} {'upgrades/s':>11} {'peak MB':>8} "
          f"{'makespan s':>11} {'lower bound s':>14}")
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(size)] + (["--timings"] if args.timings
                                                                else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        results.append(result)
        print(f"{size:>10} {result['wallSeconds']:>8} {result['upgradesPerSecond']:>11} "
              f"{result['peakRssMB']:>8} {result['makespanSeconds']:>11} "
              f"{result['lowerBoundSeconds']:>14}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
