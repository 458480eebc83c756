"""Shedding seen by Azure SDK clients: do their own retries absorb the 429s?

Starts ``scaleset serve`` with a small ``--max-requests-in-flight`` and has
``--threads`` threads of azure-mgmt-network (default retry policy: 429 resent
after Retry-After / retry-after-ms, at most 3 times per call) each GET a load
balancer 10 times and PUT it 4 times. Prints the answers the SDK's pipeline saw
(429s included) and the errors that reached the callers.

    python bench/overload_sdk.py --in-flight 8 --threads 24
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as n

from tests.e2e.server import running_server

SUB = "00000000-0000-0000-0000-0000000000bb"


class Static:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class Count(SansIOHTTPPolicy[Any, Any]):
    """Counts every answer, retried ones included (a per-retry policy)."""

    def __init__(self) -> None:
        self.seen: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
                    ) -> None:
        with self.lock:
            self.seen[response.http_response.status_code] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--threads", type=int, default=24)
    args = parser.parse_args()
    count = Count()
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(tmp), extra=("--max-requests-in-flight", str(args.in_flight))) as server:
        network = NetworkManagementClient(Static(server.token), SUB,
                                          base_url=server.endpoint,
                                          connection_verify=str(server.ca),
                                          per_retry_policies=[count])
        network.load_balancers.begin_create_or_update(
            "rg", "lb", n.LoadBalancer(location="westus")).result()

        def work(i: int) -> None:
            try:
                for j in range(10):
                    network.load_balancers.get("rg", "lb")
                    if j % 3 == 0:
                        network.load_balancers.begin_create_or_update("rg", "lb", n.LoadBalancer(
                            location="westus", tags={"t": str(i)})).result()
            except Exception as exc:  # what reached the caller, whatever it is
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - started
    seen = dict(sorted(count.seen.items()))
    print(f"{args.threads} threads x (10 GET + 4 PUT) against --max-requests-in-flight "
          f"{args.in_flight}: {took:.1f} s; answers the SDK saw: {seen}; "
          f"errors raised to callers: {len(errors)}")
    for error in errors[:3]:
        print("  ", error)


if __name__ == "__main__":
    main()
