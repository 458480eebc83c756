"""Trigger latency: from publishing an image version to its automatic run starting.

Starts ``scaleset serve`` (simulated driver) on a free loopback port, creates
one scale set with automatic OS upgrade, then publishes ``--versions`` newer
versions one after another. For each it measures, on this machine's clock,
the time from just before the publish request to the ``startTime`` of the
Platform run it triggered (``rollingUpgrades/latest``), waits for that run to
complete, and goes on. Prints median / p90 / max and the machine.

With the default settings (no rollout delay) the publish rings the reconcile
loop's doorbell, so the run should start within milliseconds, well inside a
second; ``--rollout-delay`` shows the delay being honoured (latency minus the
delay is what is printed as "late").

    python bench/trigger_latency.py --versions 10
    python bench/trigger_latency.py --versions 5 --rollout-delay 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.server import running_server

V = "?api-version=2026-04-01"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
VMSS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/t"
LB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"


def wait(predicate: Any, timeout: float = 60, step: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the server")
        time.sleep(step)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10, help="versions to publish")
    parser.add_argument("--capacity", type=int, default=3, help="instances in the scale set")
    parser.add_argument("--rollout-delay", type=float, default=0.0,
                        help="the server's --rollout-delay, in seconds")
    args = parser.parse_args()
    latencies: list[float] = []
    extra = ("--rollout-delay", str(args.rollout_delay))
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), extra=extra) as server:
        with server.http() as http:
            http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"}).raise_for_status()
            http.put(f"{LB}?api-version=2024-05-01", json={"location": "westus", "properties": {
                "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 22}}]}}
            ).raise_for_status()
            http.put(f"{VMSS}{V}", json={
                "location": "westus", "sku": {"capacity": args.capacity},
                "properties": {"upgradePolicy": {
                    "mode": "Rolling",
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
                    "virtualMachineProfile": {"storageProfile": {"imageReference": {
                        "publisher": "Canonical", "offer": "UbuntuServer",
                        "sku": "18.04-LTS", "version": "latest"}},
                        "networkProfile": {"healthProbe": {"id": f"{LB}/probes/p"}}}}}
            ).raise_for_status()

            def healthy() -> bool:
                vms = http.get(f"{VMSS}/virtualMachines{V}&$expand=instanceView").json()
                return len(vms["value"]) == args.capacity and all(
                    vm["properties"]["instanceView"]["vmHealth"]["status"]["code"]
                    == "HealthState/healthy" for vm in vms["value"])
            wait(healthy, step=0.1)

            for n in range(1, args.versions + 1):
                version = f"1.{n}.0"
                published = time.time()
                http.put(f"{IMAGES}/{version}{V}", json={"location": "westus"}
                         ).raise_for_status()

                def started(version: str = version) -> dict[str, Any] | None:
                    r = http.get(f"{VMSS}/rollingUpgrades/latest{V}")
                    if r.status_code != 200:
                        return None
                    history = http.get(f"{VMSS}/osUpgradeHistory{V}").json()["value"]
                    ours = [h for h in history if h["properties"]["targetImageReference"]
                            ["version"] == version]
                    return ours[0]["properties"] if ours else None
                run = wait(started, timeout=60 + args.rollout_delay)
                start = datetime.fromisoformat(
                    run["runningStatus"]["startTime"].replace("Z", "+00:00")).timestamp()
                latencies.append(start - published)
                wait(lambda: http.get(f"{VMSS}/rollingUpgrades/latest{V}").json()
                     ["properties"]["runningStatus"]["code"] != "RollingForward", step=0.05)

    late = [x - args.rollout_delay for x in latencies]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    print(f"publish -> Platform run started, {len(latencies)} versions, "
          f"rollout delay {args.rollout_delay:g} s:")
    print(f"  latency  median {statistics.median(latencies) * 1000:8.1f} ms   "
          f"p90 {percentile(latencies, 90) * 1000:8.1f} ms   max {max(latencies) * 1000:8.1f} ms")
    print(f"  late     median {statistics.median(late) * 1000:8.1f} ms   "
          f"p90 {percentile(late, 90) * 1000:8.1f} ms   max {max(late) * 1000:8.1f} ms"
          "   (latency minus the rollout delay)")


if __name__ == "__main__":
    main()
