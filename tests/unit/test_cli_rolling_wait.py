"""``rolling_wait.wait_for_run`` against a fake ARM server: no network, no real sleeps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scaleset.cli.client import ArmClient, ClientError
from scaleset.cli.rolling_wait import wait_for_run

ENDPOINT = "https://arm.test"
PATH = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
PENDING = {"code": "OSUpgrade/WaitingForHealthyInstances", "message": "3 of 10 unhealthy"}


def attempt(version: str, code: str) -> dict[str, Any]:
    return {"properties": {"runningStatus": {"code": code},
                           "targetImageReference": {"version": version},
                           "progress": {"successfulInstanceCount": 2,
                                        "pendingInstanceCount": 8}}}


class Fake:
    """A scale set whose history and instance view change poll by poll."""

    def __init__(self, timeline: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]):
        self.timeline = timeline  # per poll: (history items, instance-view statuses)
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        polled = request.url.path.endswith(("/osUpgradeHistory", "/rollingUpgrades/latest"))
        if polled:
            self.polls += 1  # one poll of the run per round; the view belongs to it
        history, statuses = self.timeline[min(self.polls - 1, len(self.timeline) - 1)]
        if request.url.path.endswith("/osUpgradeHistory"):
            return httpx.Response(200, json={"value": history})
        if request.url.path.endswith("/instanceView"):
            return httpx.Response(200, json={"statuses": statuses})
        if request.url.path.endswith("/rollingUpgrades/latest"):
            if not history:
                return httpx.Response(404, json={"error": {"code": "NotFound",
                                                           "message": "no run"}})
            return httpx.Response(200, json=history[0])
        return httpx.Response(404, json={"error": {"code": "NotFound", "message": "?"}})


def client(fake: Fake, sleeps: list[float]) -> ArmClient:
    return ArmClient(endpoint=ENDPOINT, token="t", subscription="s",
                     transport=httpx.MockTransport(fake), sleep=sleeps.append,
                     default_poll_interval=1.0)


def test_it_reports_what_holds_the_run_then_returns_the_ended_attempt() -> None:
    fake = Fake([
        ([attempt("1.0.0", "Completed")], [PENDING]),
        ([attempt("1.0.0", "Completed")], [PENDING]),
        ([attempt("1.1.0", "RollingForward")], []),
        ([attempt("1.1.0", "Completed"), attempt("1.0.0", "Completed")], []),
    ])
    said: list[str] = []
    sleeps: list[float] = []
    with client(fake, sleeps) as arm:
        run = wait_for_run(arm, PATH, version="1.1.0", timeout=60, report=said.append,
                           clock=lambda: float(len(sleeps)))
    assert run["properties"]["runningStatus"]["code"] == "Completed"
    assert run["properties"]["targetImageReference"]["version"] == "1.1.0"
    # each state reported once: the pending reason, then the run's progress
    assert said == ["OSUpgrade/WaitingForHealthyInstances: 3 of 10 unhealthy",
                    "RollingForward: 2 succeeded, 0 failed, 8 pending"]
    assert sleeps == [1.0, 1.0, 1.0]


def test_without_a_version_it_waits_for_the_latest_run() -> None:
    fake = Fake([([], []), ([attempt("1.1.0", "Faulted")], [])])
    said: list[str] = []
    sleeps: list[float] = []
    with client(fake, sleeps) as arm:
        run = wait_for_run(arm, PATH, version=None, timeout=60, report=said.append,
                           clock=lambda: float(len(sleeps)))
    assert run["properties"]["runningStatus"]["code"] == "Faulted"
    assert said == ["no rolling upgrade yet"]


def test_it_gives_up_after_the_timeout_saying_what_it_last_saw() -> None:
    fake = Fake([([attempt("1.0.0", "Completed")], [PENDING])])
    sleeps: list[float] = []
    with client(fake, sleeps) as arm, pytest.raises(ClientError) as caught:
        wait_for_run(arm, PATH, version="1.1.0", timeout=5, report=lambda _: None,
                     clock=lambda: float(len(sleeps)))
    assert caught.value.code == "WaitTimeout"
    assert "1.1.0" in caught.value.message and "WaitingForHealthyInstances" in caught.value.message
    assert len(sleeps) == 5
