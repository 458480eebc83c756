"""A graceful stop of the control plane while a provisioning step runs.

The step in progress may finish (nothing new starts), so a stop, like a kill -9,
runs nothing twice on an OS disk; only a step that outlasts the driver's
``step_stop_grace`` is killed by the stop, and it then runs again at the next start
(as Azure's agent reruns an extension a reboot interrupted) instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process.fleet import Fleet, wait_for

# One line when it starts and one when it ends, on the first data disk, naming the OS disk.
SLOW_STEP = """#!/bin/sh
data="${SCALESET_DATA_DISKS%%:*}"
echo "start $(basename "$PWD")" >> "$data/steps.log"
sleep 1.5
echo "end $(basename "$PWD")" >> "$data/steps.log"
"""
# The first run hangs far past any stop's patience; a later run ends at once.
HANGS_ONCE = """#!/bin/sh
data="${SCALESET_DATA_DISKS%%:*}"
echo "start $(basename "$PWD")" >> "$data/steps.log"
if [ ! -e "$data/hung" ]; then touch "$data/hung"; sleep 120; fi
echo "end $(basename "$PWD")" >> "$data/steps.log"
"""


@pytest.fixture
def reopened(fleet: Fleet) -> Iterator[list[Fleet]]:
    """Control planes opened again on the first one's data directory and store."""
    opened: list[Fleet] = []
    try:
        yield opened
    finally:
        for other in opened:
            other.close()


def _log(fleet: Fleet) -> list[str]:
    directory = fleet.driver.instance_directory(fleet.scale_set_id("web"), "0")
    if directory is None:  # not created yet
        return []
    path = directory / "disks" / "lun0" / "steps.log"
    return path.read_text().splitlines() if path.exists() else []


def _stop_while_the_step_runs(fleet: Fleet, script: str) -> tuple[list[str], float, Path]:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=1, custom_data=script)
    wait_for(lambda: _log(fleet), timeout=20, what="custom data to start")
    directory = fleet.driver.instance_directory(fleet.scale_set_id("web"), "0")
    assert directory is not None
    began = time.monotonic()
    fleet.close()
    took = time.monotonic() - began
    return (directory / "disks" / "lun0" / "steps.log").read_text().splitlines(), took, \
        directory


def test_a_stop_lets_the_running_step_finish_and_it_never_runs_again(
        fleet: Fleet, reopened: list[Fleet]) -> None:
    lines, took, _ = _stop_while_the_step_runs(fleet, SLOW_STEP)
    disk = lines[0].split()[1]
    assert lines == [f"start {disk}", f"end {disk}"], "the stop should let the step finish"
    assert took < 8, f"the stop took {took:.1f} s"

    again = Fleet(fleet.data_dir, fleet.store)
    reopened.append(again)
    wait_for(lambda: again.all_healthy("web", 1), timeout=30, what="a healthy instance")
    assert _log(again) == [f"start {disk}", f"end {disk}"]
    assert again.os_disk(again.instance("web", "0")) == disk
    assert again.console("web", "0").count("running custom data") == 1


def test_a_step_that_outlasts_the_stop_is_killed_and_runs_again_at_the_next_start(
        fleet: Fleet, reopened: list[Fleet]) -> None:
    fleet.driver.step_stop_grace = 0.5
    lines, took, _ = _stop_while_the_step_runs(fleet, HANGS_ONCE)
    disk = lines[0].split()[1]
    assert lines == [f"start {disk}"]
    assert took < 10, f"the stop took {took:.1f} s: it should not wait for a hung step"

    again = Fleet(fleet.data_dir, fleet.store)
    reopened.append(again)
    wait_for(lambda: again.all_healthy("web", 1), timeout=30, what="a healthy instance")
    # Not failed as interrupted: the stop was ours, and the step ran again to its end.
    assert _log(again) == [f"start {disk}", f"start {disk}", f"end {disk}"]
    assert again.os_disk(again.instance("web", "0")) == disk
