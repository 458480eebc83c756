"""Fleet benchmark: a real ``scaleset serve --driver simulated`` holding 0 / 100 / 1,000 /
10,000 scale sets of 10 instances; its idle CPU, its reconcile round, and 1,000 sets rolling
out at once against the policy's lower bound.

For each ``--sets`` size, in a fresh data directory:

1. The scale sets are created in the store directly, before serve starts, through the
   public command ``reconcile.commands.create_scale_set`` (one write transaction each,
   as a PUT makes; every check a PUT makes), beside one load balancer with an Http
   probe that every set names (``reconcile.probes.ensure_probe``) and the platform
   image Canonical:UbuntuServer:18.04-LTS 1.0.0. Each set: image ``latest``, Rolling
   with automatic OS upgrade, batches of ``--batch-percent`` (default 10 %: one
   instance per batch). They are created with capacity 0 and then given their 10
   instances in one write transaction (``Tx.update_scale_set``): the server-total
   quota check of a create reads every stored scale set (``quotas.enforce_total``),
   which made creating 1,000 sets with capacity 10 take 125 s and 10,000 hours; a
   capacity-0 create skips it. The time is printed.
2. ``python -m scaleset serve --driver simulated --insecure-http --port 0`` starts on
   127.0.0.1 with ``--max-instances-total`` raised to fit; its first rounds create
   every instance in the simulated driver. The benchmark waits until the store holds
   every instance Healthy on 1.0.0 and no run without an end, then ``--settle`` s more.
3. Idle CPU: user+system time of the serve process from ``/proc/<pid>/stat`` over
   ``--seconds`` (psutil is no dependency), as % of one core. Nothing else talks to
   the server during that window (``/metrics`` is scraped just before and just after).
4. Round time. serve has no round-duration metric; what ``/metrics`` has is
   ``scaleset_reconcile_pass_duration_seconds`` (one observation per pass over one
   scale set) and ``scaleset_reconcile_lag_seconds`` (one observation per round after
   the first). So the round time printed is the sum of pass durations per round:
   delta of the pass histogram's _sum / delta of the lag histogram's _count between the
   two scrapes (it leaves out the round's own reads, replication and the after-round
   log). With fewer than 3 rounds in the window (large fleets), scraping goes on every
   10 s, up to ``--round-wait`` s, until 3 rounds are seen (CPU is still the first
   window's). If serve grows a ``scaleset_reconcile_round_duration_seconds`` histogram,
   its mean is printed instead, and the source says which.
5. Rollout (the ``--rollout`` size, default 1,000; ``--rollout-runs`` in a row, each a
   newer version 1.1.0, 1.2.0, ...; min and median): the version is published through
   the API (PUT of the platform image version), so every set's automatic OS upgrade
   starts; the store is polled from this process (read-only) until every set's run
   has ended. Makespan = the last run's end - the moment of the PUT; lower bound =
   ``sim.runner.lower_bound_seconds`` for one set (all run in parallel) with serve's
   simulated per-upgrade time (``server.main.REALTIME_TIMINGS``, 0.3 + 0.2 + 0.3 s,
   which serve has no flag for; the batch percent is what sets the run's length).

Prints the machine, one line per size (sets, instances, create s, ready s, idle CPU %
median and min, round ms, serve's CPU ms per round over the idle window, passes per
round, makespan s, lower bound s, ratio) and, as the last
line, a JSON list with one object per size. ``--runs`` repeats the idle window.

    python bench/serve_fleet.py                        # 0, 100, 1000, 10000 sets
    python bench/serve_fleet.py --sets 100,1000 --seconds 20 --runs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import cpu_seconds, machine, spread

TOKEN = "sst_bench0fleet_contributor-token-for-bench-serve-fleet"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/fleet"
LB = f"{RG}/providers/Microsoft.Network/loadBalancers/fleet-lb"
PROBE = f"{LB}/probes/health"
SETS = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets"
LOCATION = "westus"
IMAGE = ("Canonical", "UbuntuServer", "18.04-LTS")
IMAGES = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/{LOCATION}/publishers/"
          f"{IMAGE[0]}/artifacttypes/vmimage/offers/{IMAGE[1]}/skus/{IMAGE[2]}/versions")
API = "?api-version=2024-07-01"
INSTANCES_PER_SET = 10
FROM_VERSION = "1.0.0"


def _model(name: str, batch_percent: int, *, capacity: int = INSTANCES_PER_SET) -> Any:
    from scaleset.model.scaleset import ScaleSet

    return ScaleSet.model_validate({
        "name": name, "id": f"{SETS}/{name}", "location": LOCATION,
        "sku": {"name": "Standard_B1s", "capacity": capacity},
        "properties": {
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {"maxBatchInstancePercent": batch_percent,
                                         # A batch may not exceed the unhealthy limit.
                                         "maxUnhealthyInstancePercent": max(20, batch_percent),
                                         "maxUnhealthyUpgradedInstancePercent": 20,
                                         "pauseTimeBetweenBatches": "PT0S"}},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {
                    "publisher": IMAGE[0], "offer": IMAGE[1], "sku": IMAGE[2],
                    "version": "latest"}},
                "networkProfile": {"healthProbe": {"id": PROBE}}}}})


def _create(data_dir: Path, sets: int, batch_percent: int) -> float:
    """The fleet in the store serve will open; seconds it took."""
    from scaleset.reconcile import commands, probes
    from scaleset.reconcile.settings import Limits, ShellSettings
    from scaleset.store.database import open_store

    started = time.perf_counter()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{(data_dir / 'scaleset.db').resolve()}")
    now = datetime.now(UTC)
    settings = ShellSettings(limits=dataclasses.replace(
        Limits(), max_instances_total=max(Limits().max_instances_total,
                                          sets * INSTANCES_PER_SET)))
    try:
        commands.publish_image_version(store, location=LOCATION, publisher=IMAGE[0],
                                       offer=IMAGE[1], sku=IMAGE[2], version=FROM_VERSION,
                                       now=now)
        probes.ensure_probe(store, PROBE, location=LOCATION, now=now)
        ids = []
        for n in range(sets):
            name = f"fleet-{n:05d}"
            ids.append(f"{SETS}/{name}".lower())
            commands.create_scale_set(store, scale_set_id=ids[-1],
                                      model=_model(name, batch_percent, capacity=0), now=now,
                                      settings=settings)

        def grow(tx: Any) -> None:
            for sid in ids:
                row = tx.get_scale_set(sid, for_update=True)
                model = row.model.model_copy(update={"sku": row.model.sku.model_copy(
                    update={"capacity": INSTANCES_PER_SET})})
                tx.update_scale_set(row.replace(model=model, updated_at=now))

        if ids:
            store.write(grow)
    finally:
        store.close()
    return time.perf_counter() - started


@dataclasses.dataclass
class Serve:
    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def get(self, path: str, timeout: float = 120) -> bytes:
        request = urllib.request.Request(self.endpoint + path,
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def put(self, path: str, body: dict[str, Any]) -> int:
        request = urllib.request.Request(
            self.endpoint + path, data=json.dumps(body).encode(), method="PUT",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            status: int = response.status
            return status

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _start(data_dir: Path, sets: int) -> Serve:
    log = data_dir.parent / "serve.log"
    env = {**os.environ, "SCALESET_BOOTSTRAP_TOKEN": TOKEN,
           "SCALESET_CONFIG": str(data_dir.parent / "client-config.json")}
    total = max(10_000, sets * INSTANCES_PER_SET)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scaleset", "serve", "--driver", "simulated",
             "--insecure-http", "--host", "127.0.0.1", "--port", "0", "--data-dir",
             str(data_dir), "--max-instances-total", str(total), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError("scaleset serve exited:\n" + log.read_text())
        found = re.search(r"scaleset listening on (\S+)", log.read_text())
        if found:
            serve = Serve(process, found.group(1), log)
            try:
                with urllib.request.urlopen(serve.endpoint + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return serve
            except OSError:
                pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("scaleset serve did not answer within 120 s:\n"
                               + log.read_text())
        time.sleep(0.2)


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'scaleset.db'}?mode=ro", uri=True, timeout=30)


def _fleet_ready(data_dir: Path, sets: int) -> bool:
    """Every instance stored Healthy on the first version, and no run without an end."""
    with _db(data_dir) as db:
        healthy = db.execute("SELECT count(*) FROM instances WHERE health_state = 'Healthy' "
                             "AND image_version = ?", (FROM_VERSION,)).fetchone()[0]
        total = db.execute("SELECT count(*) FROM instances").fetchone()[0]
        open_runs = db.execute("SELECT count(*) FROM runs WHERE end_time IS NULL").fetchone()[0]
    return bool(healthy == total == sets * INSTANCES_PER_SET and open_runs == 0)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def _scrape(serve: Serve) -> dict[str, float]:
    """The unlabelled-or-summed samples of /metrics, by name (labels summed away)."""
    totals: dict[str, float] = {}
    for line in serve.get("/metrics").decode().splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#") and match.group(1).startswith(
                "scaleset_reconcile_"):
            name = match.group(1)
            if name.endswith("_bucket"):
                continue
            totals[name] = totals.get(name, 0.0) + float(match.group(3))
    return totals


ROUND = "scaleset_reconcile_round_duration_seconds"
PASS = "scaleset_reconcile_pass_duration_seconds"
LAG = "scaleset_reconcile_lag_seconds"


def _round(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    passes = delta(f"{PASS}_count")
    if f"{ROUND}_count" in after:
        rounds = delta(f"{ROUND}_count")
        seconds = delta(f"{ROUND}_sum")
        source = f"{ROUND} (mean)"
    else:
        rounds = delta(f"{LAG}_count")
        seconds = delta(f"{PASS}_sum")
        source = f"{PASS}_sum per {LAG}_count (sum of passes per round)"
    return {"rounds": int(rounds), "passes": int(passes), "source": source,
            "roundMs": round(seconds / rounds * 1000, 2) if rounds else None,
            "passesPerRound": round(passes / rounds, 1) if rounds else None}


def _idle(serve: Serve, seconds: float, round_wait: float) -> dict[str, Any]:
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    before = _scrape(serve)
    cpu0, t0 = cpu_seconds(serve.process.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(serve.process.pid), time.monotonic()
    after = _scrape(serve)
    result = first = _round(before, after)
    deadline = time.monotonic() + round_wait
    while result["rounds"] < 3 and time.monotonic() < deadline:
        time.sleep(10)
        after = _scrape(serve)
        result = _round(before, after)
    result["roundWindowSeconds"] = round(time.monotonic() - t0, 1)
    result["idleCpuPercent"] = round((cpu1 - cpu0) / (t1 - t0) * 100, 1)
    # CPU per round suffers less than wall time from other processes on the cores.
    result["cpuMsPerRound"] = (round((cpu1 - cpu0) / first["rounds"] * 1000, 1)
                               if first["rounds"] else None)
    result["cpuWindowRounds"] = first["rounds"]
    result["loadAverage"] = round(load, 2)
    return result


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _rollout(serve: Serve, data_dir: Path, sets: int, batch_percent: int, target: str,
             timeout: float) -> dict[str, Any]:
    from scaleset.server.main import REALTIME_TIMINGS
    from scaleset.sim.runner import lower_bound_seconds

    published = datetime.now(UTC)
    status = serve.put(f"{IMAGES}/{target}{API}", {"location": LOCATION})
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str, str | None]] = []
    while time.monotonic() < deadline:
        with _db(data_dir) as db:
            rows = db.execute("SELECT status, start_time, end_time FROM runs "
                              "WHERE target_image_version = ?", (target,)).fetchall()
        if len(rows) == sets and all(end is not None for _s, _b, end in rows):
            break
        time.sleep(0.5)
    ended = [r for r in rows if r[2] is not None]
    per_run = [(_when(e) - _when(b)).total_seconds() for _s, b, e in ended]
    starts = [(_when(b) - published).total_seconds() for _s, b, _e in rows]
    bound = lower_bound_seconds(INSTANCES_PER_SET, INSTANCES_PER_SET, batch_percent,
                                REALTIME_TIMINGS.per_upgrade, timedelta(0))
    makespan = (max(_when(e) for _s, _b, e in ended) - published).total_seconds() \
        if ended else None
    statuses: dict[str, int] = {}
    for s, _b, _e in rows:
        statuses[s] = statuses.get(s, 0) + 1
    return {
        "publishStatus": status, "runs": len(rows), "ended": len(ended), "statuses": statuses,
        "makespanSeconds": round(makespan, 2) if makespan is not None else None,
        "lowerBoundSeconds": bound,
        "ratio": round(makespan / bound, 2) if makespan is not None and bound else None,
        "lastStartSeconds": round(max(starts), 2) if starts else None,
        "runSecondsMedian": round(statistics.median(per_run), 2) if per_run else None,
        "runSecondsMax": round(max(per_run), 2) if per_run else None,
        "perUpgradeSeconds": REALTIME_TIMINGS.per_upgrade.total_seconds(),
        "timings": {"reimage": REALTIME_TIMINGS.reimage.total_seconds(),
                    "boot": REALTIME_TIMINGS.boot.total_seconds(),
                    "healthy": REALTIME_TIMINGS.healthy.total_seconds()},
        "batchPercent": batch_percent,
        "timedOut": len(ended) < sets,
    }


def _size(sets: int, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="serve-fleet-"))
    data_dir = tmp / "data"
    try:
        created = _create(data_dir, sets, args.batch_percent)
        print(f"  {sets} sets created in the store in {created:.1f} s", flush=True)
        started = time.monotonic()
        serve = _start(data_dir, sets)
        try:
            while not _fleet_ready(data_dir, sets):
                if serve.process.poll() is not None:
                    raise RuntimeError("scaleset serve exited:\n" + serve.log.read_text())
                if time.monotonic() - started > args.ready_wait:
                    raise RuntimeError(f"the fleet of {sets} sets was not ready within "
                                       f"{args.ready_wait} s")
                time.sleep(2)
            ready = time.monotonic() - started
            print(f"  every instance Healthy {ready:.1f} s after serve started", flush=True)
            time.sleep(args.settle)
            idle = []
            for n in range(args.runs):
                idle.append(_idle(serve, args.seconds, args.round_wait))
                print(f"  idle run {n + 1}: {idle[-1]}", flush=True)
            rollouts: list[dict[str, Any]] = []
            for n in range(args.rollout_runs if sets == args.rollout else 0):
                if n:
                    time.sleep(args.settle)  # the last batch's events are logged, quiet again
                rollouts.append(_rollout(serve, data_dir, sets, args.batch_percent,
                                         f"1.{n + 1}.0", args.rollout_wait))
                print(f"  rollout {n + 1} (1.{n + 1}.0): {rollouts[-1]}", flush=True)
        finally:
            serve.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = [r["idleCpuPercent"] for r in idle]
    rounds = [r["roundMs"] for r in idle if r["roundMs"] is not None]
    cpu_min, cpu_median = spread(cpu)
    result: dict[str, Any] = {
        "sets": sets, "instances": sets * INSTANCES_PER_SET,
        "createSeconds": round(created, 1), "readySeconds": round(ready, 1),
        "idleCpuPercent": cpu_median, "idleCpuPercentMin": cpu_min,
        "roundMs": statistics.median(rounds) if rounds else None,
        "roundMsMin": min(rounds) if rounds else None,
        "cpuMsPerRound": statistics.median(c) if (c := [r["cpuMsPerRound"] for r in idle
                                                        if r["cpuMsPerRound"] is not None])
        else None,
        "passesPerRound": idle[-1]["passesPerRound"], "roundSource": idle[-1]["source"],
        "idleSeconds": args.seconds, "runs": args.runs, "idle": idle,
    }
    if rollouts:
        ratios = [r["ratio"] for r in rollouts if r["ratio"] is not None]
        spans = [r["makespanSeconds"] for r in rollouts if r["makespanSeconds"] is not None]
        result["rollout"] = {
            **rollouts[-1], "rollouts": len(rollouts),
            "makespanSeconds": statistics.median(spans) if spans else None,
            "makespanSecondsMin": min(spans) if spans else None,
            "ratio": statistics.median(ratios) if ratios else None,
            "ratioMin": min(ratios) if ratios else None, "each": rollouts}
    return result


def _row(r: dict[str, Any]) -> str:
    roll = r.get("rollout") or {}

    def get(d: dict[str, Any], key: str) -> object:
        value = d.get(key)
        return "-" if value is None else value

    return (f"{r['sets']:>6} {r['instances']:>9} {r['createSeconds']:>8} {r['readySeconds']:>7} "
            f"{r['idleCpuPercent']:>7} {r['idleCpuPercentMin']:>7} {get(r, 'roundMs'):>9} "
            f"{get(r, 'cpuMsPerRound'):>9} {get(r, 'passesPerRound'):>7} "
            f"{get(roll, 'makespanSeconds'):>10} "
            f"{get(roll, 'lowerBoundSeconds'):>7} {get(roll, 'ratio'):>6}")


HEADER = (f"{'sets':>6} {'instances':>9} {'create s':>8} {'ready s':>7} {'idle %':>7} "
          f"{'(min)':>7} {'round ms':>9} {'cpu ms/r':>9} {'passes':>7} {'makespan s':>10} "
          f"{'bound s':>7} {'ratio':>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="0,100,1000,10000")
    parser.add_argument("--seconds", type=float, default=20, help="idle window")
    parser.add_argument("--runs", type=int, default=1, help="idle windows per size")
    parser.add_argument("--rollout", type=int, default=1000,
                        help="the size at which every set rolls out at once (0: none)")
    parser.add_argument("--rollout-runs", type=int, default=1,
                        help="rollouts in a row at that size (1.1.0, 1.2.0, ...): min, median")
    parser.add_argument("--batch-percent", type=int, default=10,
                        help="maxBatchInstancePercent of every set (sets the run's length)")
    parser.add_argument("--settle", type=float, default=3,
                        help="seconds between the fleet being ready and the idle window")
    parser.add_argument("--ready-wait", type=float, default=3600)
    parser.add_argument("--round-wait", type=float, default=300)
    parser.add_argument("--rollout-wait", type=float, default=900)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"serve --driver simulated, SQLite, {INSTANCES_PER_SET} instances per set, idle "
          f"window {args.seconds} s x {args.runs}; idle % of one core (median, min); round = "
          "sum of pass durations per round from /metrics; rollout at "
          f"{args.rollout} sets, batches of {args.batch_percent} %", flush=True)
    results = []
    for sets in (int(s) for s in args.sets.split(",")):
        print(f"{sets} sets:", flush=True)
        results.append(_size(sets, args))
    print(HEADER)
    for r in results:
        print(_row(r))
    for r in results:
        if "rollout" in r:
            roll = {k: v for k, v in r["rollout"].items() if k != "each"}
            print(f"rollout of {r['sets']} sets (median of {roll['rollouts']}): {roll}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
