"""Stateful fuzzing of a live ``serve`` from its whole OpenAPI document (schemathesis).

FastAPI emits no OpenAPI links, so the document gets them here, generically: a
PUT (or a POST that creates) at a path links to every operation on that path and
below it, handing over its path parameters and ``api-version``. So a scale set
PUT is followed by GET/PATCH/DELETE of the same scale set, its instances, its
upgrade runs and its power actions; a load balancer PUT by its probes and NAT
rules; a gallery PUT by its images and versions; and so on for every resource.
Hypothesis drives sequences of such calls against a real ``serve`` (simulated
driver, reconcile loop running). Whatever the sequence, no answer is a 5xx and
every error is ARM's envelope with a code and a message.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition

from tests.e2e.server import running_server
from tests.fault.conftest import hard_timeout

schemathesis = pytest.importorskip("schemathesis")

METHODS = ("get", "put", "post", "patch", "delete", "head")
PARAMETER = re.compile(r"\{([^}]+)\}")
MAX_EXAMPLES = 80
STEPS = 8


def with_links(document: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``document`` with OpenAPI links from each creating operation to what it creates.

    A PUT on a path, or a POST on a path (the collection-style creates), links its
    2xx answers to every other operation on the same path or a path below it; the
    target receives the source's path parameters and ``api-version``.
    """
    linked = copy.deepcopy(document)
    paths: dict[str, dict[str, Any]] = linked["paths"]
    count = 0
    for source_path, source_ops in paths.items():
        names = PARAMETER.findall(source_path)
        for method in ("put", "post"):
            source = source_ops.get(method)
            if source is None:
                continue
            source_query = {p["name"] for p in source.get("parameters", []) if p["in"] == "query"}
            links: dict[str, Any] = {}
            for target_path, target_ops in paths.items():
                if target_path != source_path and not target_path.startswith(source_path + "/"):
                    continue
                for target_method, target in target_ops.items():
                    if target_method not in METHODS or target is source:
                        continue
                    target_query = {p["name"] for p in target.get("parameters", [])
                                    if p["in"] == "query"}
                    parameters = {f"path.{n}": f"$request.path.{n}" for n in names}
                    if "api-version" in source_query & target_query:
                        parameters["query.api-version"] = "$request.query.api-version"
                    links[f"{target_method}-{target['operationId']}"[:120]] = {
                        "operationId": target["operationId"], "parameters": parameters}
            if not links:
                continue
            for status, response in source["responses"].items():
                if status.startswith("2"):
                    response["links"] = links
                    count += len(links)
    return linked, count


def without_streams(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without ``follow`` on the events list: ``follow=true`` answers a stream
    that never ends (tests/e2e/test_event_stream.py tests it), not one answer to judge."""
    for ops in document["paths"].values():
        for op in ops.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [p for p in op["parameters"] if p.get("name") != "follow"]
    return document


@hard_timeout(150)
def test_stateful_sequences_never_get_a_server_error(data_dir: Path) -> None:
    with running_server(data_dir, extra=("--insecure-http",)) as server:
        document = without_streams(httpx.get(f"{server.endpoint}/openapi.json",
                                             timeout=10).json())
        linked, links = with_links(document)
        schema = schemathesis.openapi.from_dict(linked)
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        created: set[str] = set()  # paths a PUT/POST answered 2xx for
        followed = 0  # calls on (or below) a path created earlier: the links at work
        operations = sum(1 for ops in document["paths"].values() for m in ops if m in METHODS)
        endpoint, token = server.endpoint, server.token

        class Machine(schema.as_state_machine()):  # type: ignore[misc]
            def setup(self) -> None:
                created.clear()

            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return {"base_url": endpoint, "headers": {"Authorization": f"Bearer {token}"},
                        "timeout": 30}

            def validate_response(self, response: Any, case: Any, *args: Any,
                                  **kwargs: Any) -> None:
                nonlocal followed
                statuses[response.status_code] += 1
                path = case.formatted_path.lower()
                followed += any(path == c or path.startswith(c + "/") for c in created)
                if case.method.upper() in ("PUT", "POST") and 200 <= response.status_code < 300:
                    created.add(path)
                where = f"{case.method} {case.formatted_path}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code} {response.text[:300]}")
                elif response.status_code >= 400 and case.method.upper() != "HEAD":
                    try:
                        error = response.json()["error"]
                        assert isinstance(error["code"], str) and error["code"]
                        assert isinstance(error["message"], str) and error["message"]
                    except (ValueError, KeyError, TypeError, AssertionError):
                        failures.append(f"{where}: {response.status_code} is not an ARM "
                                        f"envelope: {response.text[:300]}")
                assert not failures, failures[-1]

        try:
            Machine.run(settings=settings(
                max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None,
                derandomize=True, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck)))
        except FlakyStrategyDefinition as exc:
            # Replaying a failure against a server whose state moved on draws differently;
            # what failed in the first place is what the reader needs.
            raise AssertionError(f"failed calls: {failures or 'none recorded'}") from exc
    calls = sum(statuses.values())
    print(f"\nfault suite, stateful fuzz: {operations} operations, {links} links, "
          f"{MAX_EXAMPLES} sequences of up to {STEPS} steps, {calls} calls ({followed} on "
          f"resources created earlier in their sequence); statuses "
          f"{dict(sorted(statuses.items()))}; {len(failures)} failures")
    assert not failures
    assert calls >= MAX_EXAMPLES
    assert sum(n for s, n in statuses.items() if 200 <= s < 300) > 0, statuses
    assert followed > 0, "no call followed a link to a resource created before it"
