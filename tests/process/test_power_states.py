"""Power verbs on real instances: stop keeps the disks, start does not rerun custom data,
redeploy is a new process on a new address with the same disks, deallocate releases the
address."""

from __future__ import annotations

import time
from typing import Any

from tests.process.fleet import VMSS, Fleet, wait_for

# Runs on every *new* OS disk: one line per run, on the OS disk itself.
CUSTOM_DATA = "#!/bin/sh\necho ran >> ./custom-data-runs\n"


def _finish(fleet: Fleet, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Send a verb and wait for its operation to end; the final status."""
    fleet.call(method, path, body, expect=202)
    url = fleet.last_operation

    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = fleet.client.get(url).json()
        return status if status["status"] != "InProgress" else None
    return wait_for(ended, timeout=30, what=f"{path} to finish")


def _runs(fleet: Fleet) -> int:
    return (fleet.os_disk_path("web", "0") / "custom-data-runs").read_text().count("ran")


def test_stop_start_redeploy_deallocate_on_a_real_instance(fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=1, custom_data=CUSTOM_DATA)
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=20, what="a healthy instance")
    vm = f"{VMSS}/web/virtualMachines/0"
    first = fleet.instance("web", "0")
    address, disk, pid = fleet.address(first), fleet.os_disk(first), fleet.pid("web", "0")
    assert pid is not None and _runs(fleet) == 1
    fleet.put_data(first, "kept", b"written before the power verbs")

    # powerOff: the process is gone, the disks stay, the health probe fails (not hangs).
    assert _finish(fleet, "POST", f"{vm}/powerOff")["status"] == "Succeeded"
    stopped = fleet.instance("web", "0")
    assert fleet.power(stopped) == "PowerState/stopped"
    assert fleet.pid("web", "0") is None and not fleet.answers(address)
    assert fleet.health(stopped) == "HealthState/unhealthy"
    assert fleet.os_disk(stopped) == disk and _runs(fleet) == 1

    # start: the same OS disk boots again; custom data does not run a second time.
    assert _finish(fleet, "POST", f"{vm}/start")["status"] == "Succeeded"
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=20, what="healthy after start")
    started = fleet.instance("web", "0")
    assert fleet.power(started) == "PowerState/running"
    assert fleet.os_disk(started) == disk and fleet.address(started) == address
    assert fleet.pid("web", "0") not in (None, pid)
    assert _runs(fleet) == 1
    assert fleet.get_data(address, "kept") == b"written before the power verbs"
    assert "webapp 1.1.0" in fleet.page(started)

    # redeploy: "another host": a new process on a new address, the same disks.
    before = fleet.pid("web", "0")
    assert _finish(fleet, "POST", f"{VMSS}/web/redeploy",
                   {"instanceIds": ["0"]})["status"] == "Succeeded"
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=20, what="healthy after redeploy")
    moved = fleet.instance("web", "0")
    new_address = fleet.address(moved)
    assert new_address != address and not fleet.answers(address)
    assert fleet.pid("web", "0") not in (None, before)
    assert fleet.os_disk(moved) == disk and _runs(fleet) == 1
    assert fleet.get_data(new_address, "kept") == b"written before the power verbs"

    # deallocate: stopped and its address released; start takes an address again.
    assert _finish(fleet, "POST", f"{VMSS}/web/deallocate")["status"] == "Succeeded"
    gone = fleet.instance("web", "0")
    assert fleet.power(gone) == "PowerState/deallocated"
    assert gone["properties"]["instanceView"].get("privateIPAddress") is None
    assert not fleet.answers(new_address)
    assert _finish(fleet, "POST", f"{VMSS}/web/start")["status"] == "Succeeded"
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=20, what="healthy after deallocate")
    back = fleet.instance("web", "0")
    assert fleet.os_disk(back) == disk and _runs(fleet) == 1
    assert fleet.get_data(fleet.address(back), "kept") == b"written before the power verbs"


def test_reimageall_empties_the_data_disks_and_stop_survives_a_restart(fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2, custom_data=CUSTOM_DATA)
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=20, what="2 healthy instances")
    for instance in fleet.instances("web"):
        fleet.put_data(instance, "x", b"data")
    old_disk = fleet.os_disk(fleet.instance("web", "0"))
    assert _finish(fleet, "POST", f"{VMSS}/web/reimageall",
                   {"instanceIds": ["0"]})["status"] == "Succeeded"
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=20, what="healthy after reimageall")
    zero, one = fleet.instance("web", "0"), fleet.instance("web", "1")
    assert fleet.os_disk(zero) != old_disk
    assert _runs(fleet) == 1  # a new OS disk: custom data ran on it, once
    assert fleet.get_data(fleet.address(zero), "x") is None
    assert fleet.get_data(fleet.address(one), "x") == b"data"

    # Powered off means off: the supervisor does not restart it, however long one waits.
    assert _finish(fleet, "POST", f"{VMSS}/web/virtualMachines/1/powerOff")["status"] \
        == "Succeeded"
    time.sleep(2)
    assert fleet.pid("web", "1") is None
    assert fleet.power(fleet.instance("web", "1")) == "PowerState/stopped"
    assert fleet.power(fleet.instance("web", "0")) == "PowerState/running"
