"""A crashed instance process is restarted, with back-off, and the console log says so."""

from __future__ import annotations

import json
import os
import re
import signal
from functools import partial
from pathlib import Path

from tests.process.fleet import Fleet, wait_for


def _kill(fleet: Fleet, instance_id: str) -> int:
    pid = fleet.pid("web", instance_id)
    assert pid is not None, f"instance {instance_id} has no running process"
    os.kill(pid, signal.SIGKILL)
    return pid


def _restarted(fleet: Fleet, old_pid: int) -> int:
    """The instance's new pid, 0 while it has none or still the old one."""
    pid = fleet.pid("web", "0")
    return pid if pid is not None and pid != old_pid else 0


def test_a_killed_instance_goes_down_then_is_restarted_and_healthy(fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2)
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="2 healthy instances")
    address = fleet.address(fleet.instance("web", "0"))
    other = fleet.pid("web", "1")

    old = _kill(fleet, "0")

    def down() -> tuple[str, str] | None:
        instance = fleet.instance("web", "0")
        if fleet.power(instance) != "PowerState/stopped":
            return None
        return fleet.power(instance), fleet.health(instance)

    seen = wait_for(down, timeout=5, what="instance 0 to be seen stopped")
    assert seen == ("PowerState/stopped", "HealthState/unhealthy")

    new = wait_for(lambda: _restarted(fleet, old), timeout=10, what="a new process")
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=10, what="healthy again")
    instance = fleet.instance("web", "0")
    assert fleet.power(instance) == "PowerState/running"
    assert fleet.address(instance) == address
    assert "webapp 1.0.0" in fleet.page(instance)
    assert fleet.pid("web", "0") == new
    assert fleet.pid("web", "1") == other  # the neighbour was not touched

    console = fleet.console("web", "0")
    exited = console.index("process exited (status -9); restarting in 0.5 s")
    assert "[scaleset] booting OS disk" in console[exited:], console
    assert console.count("listening on") == 2  # the app's own output, both boots


def test_a_crash_loop_backs_off_and_recovers_when_it_stops_crashing(fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_scale_set("web", capacity=1, probe=False, automatic=False)
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=15, what="a healthy instance")
    pid = _kill(fleet, "0")
    for _ in range(2):  # crash again as soon as it is back: 3 crashes in a row
        pid = wait_for(partial(_restarted, fleet, pid), timeout=10, what="a restart")
        os.kill(pid, signal.SIGKILL)
    # The third wait is 2 s: long enough to see the instance down through the API.
    wait_for(lambda: fleet.power(fleet.instance("web", "0")) == "PowerState/stopped",
             timeout=3, what="instance 0 to be seen stopped")
    wait_for(lambda: _restarted(fleet, pid), timeout=10, what="the last restart")
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=10, what="healthy again")
    waits = re.findall(r"process exited \(status -9\); restarting in ([0-9.]+) s",
                       fleet.console("web", "0"))
    assert waits == ["0.5", "1.0", "2.0"]


def test_an_entrypoint_that_cannot_start_is_retried_with_back_off(fleet: Fleet,
                                                                   tmp_path: Path) -> None:
    image = tmp_path / "broken"
    image.mkdir()
    (image / "image.json").write_text(json.dumps(
        {"osType": "Linux", "entrypoint": ["./no-such-program"]}))
    fleet.publish("1.0.0", image)
    fleet.create_scale_set("web", capacity=1, probe=False, automatic=False)

    def retried_twice() -> str:
        text = fleet.console("web", "0") if fleet.instances("web") else ""
        return text if text.count("could not be started") >= 2 else ""

    text = wait_for(retried_twice, timeout=10, what="two failed starts in the console")
    assert "no-such-program" in text
    delays = [float(d) for d in re.findall(r"could not be started.*retrying in ([0-9.]+) s",
                                           text)]
    assert delays[:2] == [0.5, 1.0]  # back-off, not a busy loop
    instance = fleet.instance("web", "0")
    assert fleet.power(instance) == "PowerState/stopped"
    assert fleet.health(instance) == "HealthState/unhealthy"
