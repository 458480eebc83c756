"""The event stream (``…/events?follow=true``) of a live ``scaleset serve``.

* a client that drops the stream mid-rollout and comes back with ``Last-Event-ID``
  gets every event exactly once, the same as the paged list;
* streams do not take the places of ordinary requests; beyond
  ``--max-event-streams`` a new stream is a 429 with Retry-After;
* serve stops promptly while a stream is open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, running_server, trusting
from tests.e2e.test_cli_live import cli, probe_id

V = "?api-version=2024-07-01"
IMAGE = ("vm", "image", "publish", "-l", "westus", "-p", "Canonical", "-f", "UbuntuServer",
         "-s", "18.04-LTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = ("--max-event-streams", "2", "--max-requests-in-flight", "2")
    with running_server(tmp_path_factory.mktemp("events"), extra=extra) as s:
        yield s


def vmss_path(server: Server, name: str) -> str:
    return (f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{name}")


def create(server: Server, name: str, count: int = 4) -> str:
    cli(server, *IMAGE, "--version", "1.0.0")
    cli(server, "vmss", "create", "-g", "rg", "-n", name,
        "--image", "Canonical:UbuntuServer:18.04-LTS:latest", "--instance-count", str(count),
        "--upgrade-policy-mode", "Rolling", "--health-probe", probe_id(server),
        "--enable-auto-os-upgrade")
    path = vmss_path(server, name)
    with server.http() as http:
        assert http.get(path + V).status_code == 200
    return path


def stream(server: Server, path: str, *, last_id: str | None, until: Any,
           timeout: float = 60) -> list[dict[str, Any]]:
    """Events from the stream until ``until(events)`` holds; then the client hangs up."""
    headers = {"Authorization": f"Bearer {server.token}", "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.endpoint, verify=trusting(server.ca),
                      timeout=httpx.Timeout(10, read=20)) as http, \
            http.stream("GET", f"{path}/events{V}&follow=true", headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in r.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                event = json.loads(line[5:].strip())
                assert event["id"] == event_id  # the SSE id is the event's id
                got.append(event)
                if until(got):
                    break
            assert time.monotonic() < deadline, f"stream stalled after {got[-3:]}"
    return got


def listed(server: Server, path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = f"{path}/events{V}"
    with server.http() as http:
        while url is not None:
            page = http.get(url).json()
            out += page["value"]
            url = page.get("nextLink")
    return out


def test_a_dropped_stream_resumes_without_gaps_or_repeats(server: Server) -> None:
    path = create(server, "web")
    first = stream(server, path, last_id=None, until=lambda got: len(got) >= 1)
    assert first[0]["kind"] == "ScaleSetCreated"
    # While nobody listens, a rollout happens.
    cli(server, *IMAGE, "--version", "1.1.0")
    second = stream(server, path, last_id=first[-1]["id"],
                    until=lambda got: len(got) >= 3 and got[-1]["kind"] != "RunFinished"
                    and any(e["kind"] == "BatchStarted" for e in got))
    third = stream(server, path, last_id=second[-1]["id"],
                   until=lambda got: any(e["kind"] == "RunFinished" for e in got))
    seen = first + second + third
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "an event was sent twice"
    whole = listed(server, path)
    assert seen == whole[:len(seen)], "the stream skipped or reordered events"
    kinds = [e["kind"] for e in seen]
    assert "RunStarted" in kinds and "InstanceUpgraded" in kinds
    assert seen[-1]["kind"] == "RunFinished" and seen[-1]["data"]["status"] == "Completed"


def test_streams_have_their_own_bound_and_leave_requests_their_places(server: Server) -> None:
    path = create(server, "api")
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{path}/events{V}&follow=true"
    with httpx.Client(base_url=server.endpoint, verify=trusting(server.ca), timeout=10,
                      headers=headers) as http:
        with http.stream("GET", url) as one, http.stream("GET", url) as two:
            assert one.status_code == two.status_code == 200
            # Two streams open and --max-requests-in-flight 2: ordinary requests still pass.
            for _ in range(3):
                assert http.get(path + V).status_code == 200
            three = http.get(url)
            assert three.status_code == 429, three.text
            assert three.headers["Retry-After"] == "1"
            assert "--max-event-streams" in three.json()["error"]["message"]
        # Closed streams give their places back.
        for _ in range(50):
            with http.stream("GET", url) as again:
                if again.status_code == 200:
                    break
            time.sleep(0.1)
        assert again.status_code == 200


def test_a_reader_may_follow_and_no_token_may_not(server: Server) -> None:
    path = vmss_path(server, "web")
    with httpx.Client(base_url=server.endpoint, verify=trusting(server.ca), timeout=10) as http:
        r = http.get(f"{path}/events{V}&follow=true")
        assert r.status_code == 401 and r.json()["error"]["code"]


def test_serve_stops_promptly_with_a_stream_open(tmp_path: Path) -> None:
    with running_server(tmp_path) as s:
        path = create(s, "web", count=1)
        http = httpx.Client(base_url=s.endpoint, verify=trusting(s.ca),
                            timeout=httpx.Timeout(10, read=30),
                            headers={"Authorization": f"Bearer {s.token}"})
        with http, http.stream("GET", f"{path}/events{V}&follow=true") as r:
            assert r.status_code == 200
            started = time.monotonic()
            s.process.terminate()
            s.process.wait(20)
            assert time.monotonic() - started < 10
