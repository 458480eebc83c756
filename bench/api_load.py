"""API load check: a live ``scaleset serve`` answering reads and writes while it rolls out.

Starts a server on a free loopback port, creates 5 scale sets of 20 instances,
publishes a newer image (5 Platform runs start), and for ``--seconds`` has
``--threads`` clients loop GET scale set / GET instances with instance views /
GET rollingUpgrades/latest / PATCH tags. Prints requests per second, the
status codes seen, and how each run ended; stops the server.

    python bench/api_load.py --seconds 15 --threads 8
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.server import running_server

V = "?api-version=2026-04-01"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
SETS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets"
LB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    codes: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        with server.http() as http:
            http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"})
            # A scale set's health probe must exist before the scale set names it.
            http.put(f"{LB}?api-version=2024-05-01", json={"location": "westus", "properties": {
                "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 22}}]}})
            for i in range(5):
                http.put(f"{SETS}/v{i}{V}", json={
                    "location": "westus", "sku": {"capacity": 20},
                    "properties": {"upgradePolicy": {
                        "mode": "Rolling",
                        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
                        "virtualMachineProfile": {"storageProfile": {"imageReference": {
                            "publisher": "Canonical", "offer": "UbuntuServer",
                            "sku": "18.04-LTS", "version": "latest"}},
                            "networkProfile": {"healthProbe": {"id": f"{LB}/probes/p"}}}}})
            time.sleep(3)
            http.put(f"{IMAGES}/1.1.0{V}", json={"location": "westus"})
        stop = time.monotonic() + args.seconds

        def client(n: int) -> None:
            base = f"{SETS}/v{n % 5}"
            with server.http() as http:
                while time.monotonic() < stop:
                    seen = [http.get(base + V).status_code,
                            http.get(f"{base}/virtualMachines{V}&$expand=instanceView").status_code,
                            http.get(f"{base}/rollingUpgrades/latest{V}").status_code,
                            http.patch(base + V, json={"tags": {"n": str(n)}}).status_code]
                    with lock:
                        codes.update(seen)

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        with server.http() as http:
            runs = [http.get(f"{SETS}/v{i}/rollingUpgrades/latest{V}").json()["properties"]
                    ["runningStatus"]["code"] for i in range(5)]
    total = sum(codes.values())
    print(f"{total} requests in {elapsed:.1f} s = {total / elapsed:.0f} req/s with "
          f"{args.threads} clients; status codes {dict(codes)}; runs {runs}")


if __name__ == "__main__":
    main()
