"""Process-driver benchmark: a rolling OS upgrade of real webapp instances.

A whole control plane in this process, wired like ``scaleset serve --driver
process`` (SQLite store, artifact store, ``ProcessDriver``, ``ReconcileLoop``
with the server's default resync, the ARM API through a TestClient), runs
``--instances`` real webapp instances on 127.x addresses behind a load-balancer
Http probe (8080 ``/health``, every second, one probe). It publishes
``examples/images/webapp/1.0.0``, waits for the fleet to be healthy, then
publishes ``1.1.0`` and lets the automatic OS upgrade roll the fleet under a
rolling policy (``--batch-percent``, default 20: five batches of ten; no pause;
maxUnhealthyInstancePercent the larger of 20 and the batch). The server's
defaults apply everywhere else (1 s resync, 5 s stop grace, 5 min health timeout).

Measured from the outside while the run goes:

* the API is polled every ``--poll`` seconds (instance views and
  ``rollingUpgrades/latest``); for every instance, the first poll that shows it
  Healthy on the new version;
* the driver's own view (``ProcessDriver.observe``) is polled the same way,
  which shows how much of an instance's time is the instance itself and how
  much is the control plane noticing;
* after the run, its batches' start and end times are read from the store.

Per-instance replace+boot+healthy time = first seen Healthy on the new version
minus its batch's start time. The policy's lower bound is the sum over batches
of the slowest instance's time in that batch, plus the pauses (PT0S here);
makespan is publish -> ``rollingUpgrades/latest`` says Completed. Prints the
numbers, the machine, wall time, peak RSS and the processes started, and, as
the last line, a JSON object with the same numbers.

    python bench/process_fleet.py                      # 50 instances, batches of 20 %
    python bench/process_fleet.py --instances 20 --batch-percent 50
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEBAPP = ROOT / "examples" / "images" / "webapp"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/bench"
VMSS = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
PROBE_ID = LB + "/probes/http"
COMPUTE = {"api-version": "2026-04-01"}
NETWORK = {"api-version": "2024-05-01"}
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
NAME = "web"
HEALTHY = "HealthState/healthy"


class Aborted(RuntimeError):
    """The benchmark ran out of time or something it waited for went wrong."""


@dataclass
class Observed:
    """What the pollers saw, as wall-clock seconds (``time.time()``)."""

    api_healthy: dict[str, float] = field(default_factory=dict)
    """Instance id -> first API poll showing it Healthy on the target version."""
    driver_healthy: dict[str, float] = field(default_factory=dict)
    """Instance id -> first driver poll showing it Healthy on the target version."""
    completed_at: float | None = None
    status: str | None = None
    api_polls: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of every API poll of the instance views."""
    driver_polls: list[float] = field(default_factory=list)
    error: BaseException | None = None


class ControlPlane:
    """Store, artifacts, process driver, reconcile loop and API, wired as ``scaleset serve``."""

    def __init__(self, data_dir: Path) -> None:
        from fastapi.testclient import TestClient

        from scaleset.api.app import create_app
        from scaleset.api.context import ApiContext
        from scaleset.artifacts import ArtifactStore
        from scaleset.catalog import auto_upgrade
        from scaleset.clock import SystemClock
        from scaleset.drivers.process.driver import ProcessDriver
        from scaleset.reconcile.settings import ShellSettings, SourcePolicy
        from scaleset.reconcile.shell import Reconciler
        from scaleset.server.loop import ReconcileLoop
        from scaleset.server.settings import ServeSettings
        from scaleset.store.database import make_engine, migrate
        from scaleset.store.repository import Store

        defaults = ServeSettings()
        engine = make_engine(f"sqlite:///{data_dir / 'scaleset.db'}")
        migrate(engine)
        self.store = Store(engine)
        self.artifacts = ArtifactStore(data_dir / "images", data_dir=data_dir)
        self.loop: Any = None
        self.driver = ProcessDriver(data_dir / "instances", self.artifacts,
                                    on_change=self._wake)
        clock = SystemClock()
        self.reconciler = Reconciler(
            store=self.store, driver=self.driver, clock=clock,
            settings=ShellSettings(
                health_timeout=defaults.health_timeout,
                # as serve --auto-upgrade-image Contoso:WebApp:1
                auto_upgrade_images=auto_upgrade.merged(
                    defaults.auto_upgrade_images,
                    [auto_upgrade.parse_urn("Contoso:WebApp:1")]),
                # as serve --image-source-root examples/images/webapp
                sources=SourcePolicy(roots=(WEBAPP,))))
        self.loop = ReconcileLoop(reconciler=self.reconciler, store=self.store, clock=clock,
                                  driver_next_event=self.driver.next_event_time,
                                  resync=defaults.resync)
        context = ApiContext(store=self.store, clock=clock, settings=self.reconciler.settings,
                             notify=self.loop.notify, auth_required=False,
                             artifacts=self.artifacts, console_log=self.driver.console_log)
        # Entered once: one event-loop portal for every request, not a new one per request,
        # so the pollers cost the control plane as little as they can.
        self.client = TestClient(create_app(context), base_url="https://testserver")
        self.client.__enter__()
        self.loop.start()

    def _wake(self, scale_set_id: str | None = None) -> None:
        if self.loop is not None:
            self.loop.notify(scale_set_id)

    def close(self) -> None:
        self.loop.stop()
        self.driver.close()
        self.client.__exit__(None, None, None)
        self.store.close()

    # -- requests --------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *,
             params: dict[str, str] | None = None) -> Any:
        response = self.client.request(method, path, json=body, params=params or COMPUTE)
        if response.status_code not in (200, 201, 202):
            raise Aborted(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def publish(self, version: str) -> None:
        self.call("PUT", f"{VERSIONS}/{version}", {
            "location": "westus", "properties": {"source": {"path": str(WEBAPP / version)}}})

    def create_load_balancer(self) -> None:
        self.call("PUT", LB, {"location": "westus", "sku": {"name": "Standard"}, "properties": {
            "probes": [{"name": "http", "properties": {
                "protocol": "Http", "port": 8080, "requestPath": "/health",
                "intervalInSeconds": 1, "numberOfProbes": 1}}]}}, params=NETWORK)

    def create_scale_set(self, capacity: int, batch_percent: int) -> None:
        self.call("PUT", f"{VMSS}/{NAME}", {
            "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
            "properties": {
                "upgradePolicy": {
                    "mode": "Rolling",
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                    "rollingUpgradePolicy": {"maxBatchInstancePercent": batch_percent,
                                             "maxUnhealthyInstancePercent": max(20, batch_percent),
                                             "maxUnhealthyUpgradedInstancePercent": 20,
                                             "pauseTimeBetweenBatches": "PT0S"}},
                "virtualMachineProfile": {
                    "osProfile": {"computerNamePrefix": NAME, "adminUsername": "azureuser"},
                    "storageProfile": {
                        "imageReference": {"publisher": "Contoso", "offer": "WebApp",
                                           "sku": "1", "version": "latest"},
                        "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
                    "networkProfile": {"healthProbe": {"id": PROBE_ID}}}}})

    def instances(self) -> list[dict[str, Any]]:
        body = self.call("GET", f"{VMSS}/{NAME}/virtualMachines",
                         params={**COMPUTE, "$expand": "instanceView"})
        items: list[dict[str, Any]] = body["value"]
        while body.get("nextLink"):
            body = self.client.get(body["nextLink"]).json()
            items += body["value"]
        return items

    def latest_status(self) -> str | None:
        response = self.client.get(f"{VMSS}/{NAME}/rollingUpgrades/latest", params=COMPUTE)
        if response.status_code == 404:
            return None
        return str(response.json()["properties"]["runningStatus"]["code"])

    def scale_set_id(self) -> str:
        with self.store.transaction() as tx:
            ids = tx.scale_set_ids()
        if len(ids) != 1:
            raise Aborted(f"expected one scale set in the store, found {ids}")
        return ids[0]


def _version(instance: dict[str, Any]) -> str | None:
    return instance["properties"]["storageProfile"]["imageReference"].get("exactVersion")


def _health(instance: dict[str, Any]) -> str:
    return str(instance["properties"]["instanceView"]["vmHealth"]["status"]["code"])


def _wait(predicate: Callable[[], bool], deadline: float, what: str, every: float = 0.05
          ) -> None:
    while not predicate():
        if time.monotonic() > deadline:
            raise Aborted(f"timed out waiting for {what}")
        time.sleep(every)


def _poll_api(cp: ControlPlane, target: str, seen: Observed, period: float,
              stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            # The run's status first, then the instances: the views read after a Completed
            # status show every instance the run finished with. An observation is dated at
            # the middle of the request that made it.
            started = time.time()
            status = cp.latest_status()
            status_at = (started + time.time()) / 2
            before = time.time()
            items = cp.instances()
            ended = time.time()
            seen.api_polls.append((before, ended))
            now = (before + ended) / 2
            for item in items:
                iid = str(item["instanceId"])
                if iid not in seen.api_healthy and _version(item) == target \
                        and _health(item) == HEALTHY:
                    seen.api_healthy[iid] = now
            seen.status = status
            if status in ("Completed", "Faulted", "Cancelled"):
                seen.completed_at = status_at
                return
            stop.wait(max(0.0, period - (time.time() - started)))
    except BaseException as exc:  # surfaced by the main thread
        seen.error = exc


def _poll_driver(cp: ControlPlane, sid: str, target: str, seen: Observed, period: float,
                 stop: threading.Event) -> None:
    from scaleset.model.instance import HealthState

    try:
        while not stop.is_set():
            started = time.time()
            snapshot = cp.driver.observe(sid, datetime.now(UTC))
            now = (started + time.time()) / 2
            seen.driver_polls.append(now)
            for iid, inst in snapshot.instances.items():
                if iid not in seen.driver_healthy and inst.image_version == target \
                        and inst.health is HealthState.HEALTHY:
                    seen.driver_healthy[iid] = now
            stop.wait(max(0.0, period - (time.time() - started)))
    except BaseException as exc:
        seen.error = exc


class _ProcessCounter:
    """Counts the processes this process starts (``subprocess.Popen``), by kind."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._real: Any = None

    def install(self) -> None:
        from scaleset.drivers.process.processes import KEY_VARIABLE

        real = self._real = subprocess.Popen.__init__
        counter = self

        def counting_init(popen: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            real(popen, args, *rest, **kwargs)
            env = kwargs.get("env") or {}
            argv0 = args[0] if isinstance(args, list | tuple) else args
            kind = "instance" if KEY_VARIABLE in env else Path(str(argv0)).name
            with counter._lock:
                counter.counts[kind] = counter.counts.get(kind, 0) + 1

        subprocess.Popen.__init__ = counting_init  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._real is not None:
            subprocess.Popen.__init__ = self._real  # type: ignore[method-assign]
            self._real = None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        now = self.snapshot()
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


def _diffs(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def _gaps(seconds: list[float]) -> dict[str, float]:
    """Median and max of some durations, in milliseconds."""
    if not seconds:
        return {"median": 0.0, "max": 0.0}
    return {"median": round(1000 * statistics.median(seconds), 1),
            "max": round(1000 * max(seconds), 1)}


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest-rank
        return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]

    return {"min": ordered[0], "median": statistics.median(ordered), "p90": pick(0.9),
            "max": ordered[-1]}


def _fmt(q: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:6.3f}" for k, v in q.items())


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
            f"{platform.system()} {platform.release()}; the image's python3 is "
            f"{shutil.which('python3')}")


def _leftovers(prefix: str) -> list[int]:
    """Pids of processes whose ``SCALESET_INSTANCE_KEY`` is one of this run's instances."""
    from scaleset.drivers.process.processes import KEY_VARIABLE

    needle = f"{KEY_VARIABLE}={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(needle) for var in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def run(instances: int, batch_percent: int, poll: float, timeout: float) -> dict[str, Any]:
    from scaleset.drivers.process import records

    started = _ProcessCounter()
    started.install()
    wall_start = time.perf_counter()
    deadline = time.monotonic() + timeout
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="scaleset-bench-") as tmp:
        cp = ControlPlane(Path(tmp))
        prefix = ""
        try:
            cp.publish("1.0.0")
            cp.create_load_balancer()
            boot_start = time.time()
            cp.create_scale_set(instances, batch_percent)
            sid = cp.scale_set_id()
            prefix = records.scale_set_key(sid) + "/"

            def fleet_up() -> bool:
                items = cp.instances()
                return len(items) == instances and all(
                    _version(i) == "1.0.0" and _health(i) == HEALTHY for i in items)

            _wait(fleet_up, deadline, f"{instances} healthy instances on 1.0.0", every=0.1)
            result["initialBootSeconds"] = round(time.time() - boot_start, 3)
            started_before = started.snapshot()

            seen = Observed()
            stop = threading.Event()
            pollers = [
                threading.Thread(target=_poll_api, args=(cp, "1.1.0", seen, poll, stop),
                                 name="bench-api-poller", daemon=True),
                threading.Thread(target=_poll_driver, args=(cp, sid, "1.1.0", seen, poll, stop),
                                 name="bench-driver-poller", daemon=True),
            ]
            published_at = time.time()
            cp.publish("1.1.0")
            for t in pollers:
                t.start()
            try:
                _wait(lambda: seen.completed_at is not None or seen.error is not None
                      or not pollers[0].is_alive(), deadline, "the rolling upgrade to finish")
            finally:
                stop.set()
                for t in pollers:
                    t.join(10)
            if seen.error is not None:
                raise Aborted(f"a poller failed: {seen.error!r}") from seen.error
            if seen.status != "Completed" or seen.completed_at is None:
                raise Aborted(f"the run ended {seen.status}, not Completed")

            with cp.store.transaction() as tx:
                summary = tx.run_summaries(sid, limit=1)[0]
                the_run = tx.get_run(summary.run.run_id)
            batches = the_run.batches
            makespan = seen.completed_at - published_at
            per_instance: dict[str, float] = {}
            per_instance_driver: dict[str, float] = {}
            batch_rows = []
            missing = [i for b in batches for i in b.instance_ids
                       if i not in seen.api_healthy or i not in seen.driver_healthy]
            if missing:
                raise Aborted(f"instances {missing} were never seen Healthy on 1.1.0")
            for batch in batches:
                start = batch.start.timestamp()
                api = [seen.api_healthy[i] - start for i in batch.instance_ids]
                drv = [seen.driver_healthy[i] - start for i in batch.instance_ids]
                per_instance.update(zip(batch.instance_ids, api, strict=True))
                per_instance_driver.update(zip(batch.instance_ids, drv, strict=True))
                batch_rows.append({
                    "index": batch.index, "size": len(batch.instance_ids),
                    "startAfterPublish": round(start - published_at, 3),
                    "storeSeconds": round(batch.end.timestamp() - start, 3) if batch.end else None,
                    "maxApiSeconds": round(max(api), 3),
                    "medianApiSeconds": round(statistics.median(api), 3),
                    "maxDriverSeconds": round(max(drv), 3)})
            if len(per_instance) != instances:
                raise Aborted(f"the run's batches hold {len(per_instance)} instances, "
                              f"not {instances}")
            in_batches = sum(b.end.timestamp() - b.start.timestamp() for b in batches if b.end)
            bound = sum(r["maxApiSeconds"] for r in batch_rows)
            bound_driver = sum(r["maxDriverSeconds"] for r in batch_rows)
            bound_median = len(batches) * statistics.median(per_instance.values())
            pause = the_run.policy.pause_time_between_batches.total_seconds()
            run_start = the_run.start_time.timestamp()
            run_end = the_run.end_time.timestamp() if the_run.end_time else None
            result.update({
                "instances": instances, "batchPercent": batch_percent,
                "batches": len(batches), "pauseSeconds": pause,
                "perInstanceSeconds": {k: round(v, 3) for k, v in
                                       _quantiles(list(per_instance.values())).items()},
                "perInstanceDriverSeconds": {k: round(v, 3) for k, v in
                                             _quantiles(list(per_instance_driver.values()))
                                             .items()},
                "lowerBoundSeconds": round(bound + pause * (len(batches) - 1), 3),
                "lowerBoundMedianSeconds": round(bound_median + pause * (len(batches) - 1), 3),
                "lowerBoundDriverSeconds": round(bound_driver + pause * (len(batches) - 1), 3),
                "makespanSeconds": round(makespan, 3),
                "publishedAt": published_at,
                "outsideBatchesSeconds": round(makespan - in_batches, 3),
                "runStartAfterPublish": round(run_start - published_at, 3),
                "runEndAfterPublish": round(run_end - published_at, 3) if run_end else None,
                "batchRows": batch_rows,
                "apiPolls": len(seen.api_polls),
                "apiPollMs": _gaps([b - a for a, b in seen.api_polls]),
                "apiPollGapMs": _gaps(_diffs([a for a, _ in seen.api_polls])),
                "driverPolls": len(seen.driver_polls),
                "driverPollGapMs": _gaps(_diffs(seen.driver_polls)),
                "upgradeProcessesStarted": started.since(started_before),
            })
            result["overhead"] = round(makespan / result["lowerBoundSeconds"], 3)
            result["overheadDriver"] = round(makespan / result["lowerBoundDriverSeconds"], 3)
            result["overheadMedian"] = round(makespan / result["lowerBoundMedianSeconds"], 3)
        finally:
            close_start = time.perf_counter()
            cp.close()
            result["closeSeconds"] = round(time.perf_counter() - close_start, 3)
            started.uninstall()
            left = _leftovers(prefix) if prefix else []
            if left:
                print(f"ERROR: instance processes left behind after close: {left}",
                      file=sys.stderr)
            result["leftoverProcesses"] = len(left)
    result["processesStarted"] = started.snapshot()
    result["wallSeconds"] = round(time.perf_counter() - wall_start, 3)
    result["peakRssMB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _report(r: dict[str, Any], poll: float) -> None:
    ms = "{median:.0f}/{max:.0f} ms".format
    print(f"instances {r['instances']}, maxBatchInstancePercent {r['batchPercent']} -> "
          f"{r['batches']} batches, pause {r['pauseSeconds']:g} s; polls every "
          f"{poll * 1000:.0f} ms: {r['apiPolls']} API polls (each {ms(**r['apiPollMs'])} "
          f"median/max, gaps {ms(**r['apiPollGapMs'])}), {r['driverPolls']} driver polls "
          f"(gaps {ms(**r['driverPollGapMs'])})")
    print(f"initial fleet (create -> all Healthy on 1.0.0): {r['initialBootSeconds']:.3f} s")
    print("per-instance replace+boot+healthy, batch start -> first seen Healthy on 1.1.0 (s):")
    print(f"  in the API's instance views   {_fmt(r['perInstanceSeconds'])}")
    print(f"  in the driver's view          {_fmt(r['perInstanceDriverSeconds'])}")
    print(f"{'batch':>5} {'size':>4} {'starts s':>9} {'store s':>8} {'API max':>8} "
          f"{'API median':>10} {'driver max':>10}")
    for b in r["batchRows"]:
        print(f"{b['index'] + 1:>5} {b['size']:>4} {b['startAfterPublish']:>9.3f} "
              f"{b['storeSeconds']:>8.3f} {b['maxApiSeconds']:>8.3f} "
              f"{b['medianApiSeconds']:>10.3f} {b['maxDriverSeconds']:>10.3f}")
    print("  (starts: batch start after publish; store: batch start -> end in the store; "
          "API/driver: per-instance times in that batch)")
    print(f"run in the store: started {r['runStartAfterPublish']:.3f} s, ended "
          f"{r['runEndAfterPublish']:.3f} s after publish")
    print(f"lower bound, sum over batches of the batch's slowest instance (API) + pauses: "
          f"{r['lowerBoundSeconds']:.3f} s")
    print(f"  same with the driver's view: {r['lowerBoundDriverSeconds']:.3f} s; "
          f"batches x median instance (API): {r['lowerBoundMedianSeconds']:.3f} s")
    print(f"makespan, publish -> rollingUpgrades/latest Completed: {r['makespanSeconds']:.3f} s; "
          f"of it outside the store's batches (publish -> first batch, between batches, "
          f"last batch -> Completed seen): {r['outsideBatchesSeconds']:.3f} s")
    print(f"overhead, makespan / lower bound: {r['overhead']:.3f} "
          f"({'within' if r['overhead'] <= 1.10 else 'ABOVE'} the 10 % target); "
          f"/ driver-view bound: {r['overheadDriver']:.3f}; "
          f"/ batches x median: {r['overheadMedian']:.3f}")
    if r["overhead"] < 1:
        print("  (below 1: every batch's slowest time carries the lag of the poll that saw it, "
              "so the bound is overstated by up to a poll gap per batch)")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(r["processesStarted"].items()))
    during = ", ".join(f"{n} {k}" for k, n in sorted(r["upgradeProcessesStarted"].items()))
    print(f"wall {r['wallSeconds']:.3f} s (close {r['closeSeconds']:.3f} s); peak RSS of the "
          f"control plane (this process) {r['peakRssMB']} MB")
    print(f"processes started: {sum(r['processesStarted'].values())} ({kinds}); during the "
          f"upgrade: {during}; instance processes left after close: {r['leftoverProcesses']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--batch-percent", type=int, default=20,
                        help="rollingUpgradePolicy.maxBatchInstancePercent")
    parser.add_argument("--poll", type=float, default=0.025,
                        help="seconds between polls of the API and of the driver")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="abort after this many seconds")
    args = parser.parse_args()
    print(f"machine: {_machine()}", flush=True)
    try:
        result = run(args.instances, args.batch_percent, args.poll, args.timeout)
    except Aborted as exc:
        print(f"ABORTED: {exc}", file=sys.stderr)
        return 1
    _report(result, args.poll)
    print(json.dumps(result))
    return 1 if result["leftoverProcesses"] else 0


if __name__ == "__main__":
    sys.exit(main())
