"""Custom data and extensions on real instances: when they run, in which order, how they fail."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tests.process.fleet import VERSIONS, Fleet, wait_for

CUSTOM_DATA = """#!/bin/sh
# cwd is the OS disk; the first data disk is the first entry of SCALESET_DATA_DISKS.
data="${SCALESET_DATA_DISKS%%:*}"
version=$(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' image.json)
echo "provisioned $SCALESET_INSTANCE_ID on $version" >> "$data/boots.txt"
echo "custom data ran" > provisioned.marker
"""


def _custom_script(name: str, command: str, after: list[str] | None = None
                   ) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1", "settings": {"commandToExecute": command}}
    if after is not None:
        properties["provisionAfterExtensions"] = after
    return {"name": name, "properties": properties}


def _boots(fleet: Fleet, address: str) -> list[str]:
    text = fleet.get_data(address, "boots.txt")
    assert text is not None, "custom data never wrote boots.txt on the data disk"
    return text.decode().splitlines()


def test_custom_data_runs_once_per_os_disk_not_per_process_start(fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=1, custom_data=CUSTOM_DATA)
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=15, what="a healthy instance")
    address = fleet.address(fleet.instance("web", "0"))
    assert _boots(fleet, address) == ["provisioned 0 on 1.0.0"]
    assert (fleet.os_disk_path("web", "0") / "provisioned.marker").read_text() == \
        "custom data ran\n"

    # A crash restarts the process on the same OS disk: custom data does not run again.
    pid = fleet.pid("web", "0")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: fleet.pid("web", "0") not in (None, pid), timeout=10,
             what="the instance's process to be restarted")
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=10, what="healthy after the restart")
    assert _boots(fleet, address) == ["provisioned 0 on 1.0.0"]
    assert fleet.console("web", "0").count("running custom data") == 1

    # An upgrade brings a new OS disk: custom data runs on it, once.
    fleet.publish("1.1.0")
    wait_for(lambda: fleet.latest_status("web") == "Completed", timeout=20,
             what="the run to 1.1.0 to complete")
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=10, what="healthy on 1.1.0")
    assert _boots(fleet, address) == ["provisioned 0 on 1.0.0", "provisioned 0 on 1.1.0"]
    new_disk = fleet.os_disk_path("web", "0")
    assert (new_disk / "provisioned.marker").read_text() == "custom data ran\n"
    assert (new_disk / ".scaleset" / "customdata").read_text() == CUSTOM_DATA
    assert fleet.console("web", "0").count("running custom data") == 2


def test_extensions_run_in_provision_after_order_and_report_success(fleet: Fleet) -> None:
    append = 'echo {} >> "${{SCALESET_DATA_DISKS%%:*}}/order.txt"'
    extensions = [  # declared c, a, b; c after b, b after a
        _custom_script("c", append.format("c"), after=["b"]),
        _custom_script("a", append.format("a")),
        _custom_script("b", append.format("b"), after=["a"]),
    ]
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=1, extensions=extensions)
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=15, what="a healthy instance")
    instance = fleet.instance("web", "0")
    assert fleet.get_data(fleet.address(instance), "order.txt") == b"a\nb\nc\n"
    statuses = fleet.extensions(instance)
    assert sorted(statuses) == ["a", "b", "c"]
    assert {n: s["code"] for n, s in statuses.items()} == dict.fromkeys(
        "abc", "ProvisioningState/succeeded")
    views = {e["name"]: e for e in instance["properties"]["instanceView"]["extensions"]}
    assert views["a"]["type"] == "Microsoft.Azure.Extensions.CustomScript"
    assert views["a"]["typeHandlerVersion"] == "2.1"


def test_an_unknown_extension_type_fails_naming_the_type(fleet: Fleet) -> None:
    extensions = [{"name": "mystery", "properties": {
        "publisher": "Contoso.Tools", "type": "Frobnicator", "typeHandlerVersion": "1.0",
        "settings": {}}}]
    fleet.publish("1.0.0")
    fleet.create_scale_set("web", capacity=1, probe=False, automatic=False,
                           extensions=extensions)

    def failed() -> dict[str, Any]:
        for instance in fleet.instances("web"):  # empty until the instance is created
            status = fleet.extensions(instance).get("mystery") or {}
            if status.get("code") == "ProvisioningState/failed":
                return status
        return {}

    status = wait_for(failed, timeout=15, what="the unknown extension to fail")
    # The create operation the SDK's poller follows ends Failed, with Azure's code.
    operation = fleet.client.get(fleet.last_operation).json()
    assert operation["status"] == "Failed", operation
    assert operation["error"]["code"] == "VMExtensionProvisioningError"
    assert "mystery" in operation["error"]["message"]
    assert "Contoso.Tools.Frobnicator" in status["message"], status
    assert status["level"] == "Error"
    instance = fleet.instance("web", "0")
    assert fleet.health(instance) != "HealthState/healthy"
    # As Azure shows a VM whose extension failed: provisioning Failed, not Succeeded.
    assert instance["properties"]["provisioningState"] == "Failed"
    assert "extension 'mystery' failed" in fleet.console("web", "0")


def test_a_version_published_without_files_boots_the_base_image(fleet: Fleet) -> None:
    fleet.call("PUT", f"{VERSIONS}/1.0.0", {"location": "westus", "properties": {
        "osDiskImage": {"operatingSystem": "Linux"}}})
    script = "#!/bin/sh\necho base-os > \"${SCALESET_DATA_DISKS%%:*}/booted\"\n"
    fleet.create_scale_set("web", capacity=1, probe=False, automatic=False,
                           custom_data=script)
    # No health source: running with its (zero) extensions provisioned is healthy.
    wait_for(lambda: fleet.all_healthy("web", 1), timeout=15, what="a base-image instance")
    (sid,) = fleet.driver.scale_set_ids()
    directory = fleet.driver.instance_directory(sid, "0")
    assert directory is not None
    wait_for(lambda: (directory / "disks" / "lun0" / "booted").exists(), timeout=5,
             what="custom data to run on the base image")
    assert "the base image" in fleet.console("web", "0")


def test_an_instance_does_not_see_the_control_planes_environment(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")
    monkeypatch.setenv("SCALESET_BOOTSTRAP_TOKEN", "sst_secret")
    fleet.publish("1.0.0")
    script = "#!/bin/sh\nenv > \"${SCALESET_DATA_DISKS%%:*}/env\"\n"
    fleet.create_scale_set("web", capacity=1, probe=False, automatic=False,
                           custom_data=script)
    (sid,) = wait_for(fleet.driver.scale_set_ids, timeout=10, what="the instance")
    directory = fleet.driver.instance_directory(sid, "0")
    assert directory is not None
    seen = wait_for(lambda: (directory / "disks" / "lun0" / "env").exists()
                    and (directory / "disks" / "lun0" / "env").read_text(), timeout=10,
                    what="custom data to dump its environment")
    assert "SCALESET_PRIVATE_IP=127." in seen and "SCALESET_INSTANCE_ID=0" in seen
    assert "PATH=" in seen
    assert "hunter2" not in seen and "sst_secret" not in seen
