"""An operator's whole story with azure-cli, unmodified, against a live ``scaleset serve``.

Sign in with a service principal, ``az vmss create`` (a template deployment, as on
Azure), add the Application Health extension, turn automatic OS upgrade on, scale, change
one policy field by its flag and another with ``--set``, publish an image version and
watch the automatic run, read the history, run a manual upgrade and cancel another,
reimage, power actions, delete instances, delete the scale set and its group. After
every write the scale set's raw ARM body (``az rest``) is compared with the one before it:
only what the write named may have changed (``tests/e2e/story.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.az import AZ_MISSING, DEFAULT_SUBSCRIPTION, Az, signed_in
from tests.e2e.server import Server, running_server
from tests.e2e.story import ANY, CHANGED, assert_only_changed, step

pytestmark = AZ_MISSING

RG = "story"
NAME = "web"
V = "api-version=2026-04-01"
SCALE_SET = (f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{RG}/providers/"
             f"Microsoft.Compute/virtualMachineScaleSets/{NAME}")
IMAGES = (f"/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.Compute/locations/"
          "westus/publishers/Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/"
          "18.04-LTS/versions")
VMSS = ("-g", RG, "-n", NAME)
EXACT = "properties.virtualMachineProfile.storageProfile.imageReference.exactVersion"
AUTO = "properties.upgradePolicy.automaticOSUpgradePolicy"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("az-story"), health_timeout="3") as s:
        yield s


class Story:
    """The az session and the scale set's last GET body, for diffing each write."""

    def __init__(self, server: Server, az: Az) -> None:
        self.server = server
        self.az = az
        self.body: dict[str, Any] = {}

    def url(self, path: str) -> str:
        return f"{self.server.endpoint}{path}?{V}" if "?" not in path else \
            f"{self.server.endpoint}{path}&{V}"

    def get(self) -> dict[str, Any]:
        body: dict[str, Any] = self.az.json("rest", "--method", "get",
                                            "--url", self.url(SCALE_SET))
        return body

    def write(self, name: str, expect: dict[str, Any], *args: str) -> Any:
        """Run one az write; the GET after it may differ from the one before only by
        ``expect``."""
        with step(name):
            out = self.az.json(*args)
            after = self.get()
            assert_only_changed(name, self.body, after, expect)
            self.body = after
            return out

    def publish(self, version: str) -> None:
        self.az.ok("rest", "--method", "put", "--url", self.url(f"{IMAGES}/{version}"),
                   "--body", '{"location": "westus", "properties": {"osDiskImage": '
                             '{"operatingSystem": "Linux"}}}')

    def wait_for_run(self, version: str, *, timeout: float = 90) -> dict[str, Any]:
        """``rolling-upgrade get-latest`` until a run to ``version`` has ended."""
        deadline = time.monotonic() + timeout
        while True:
            latest: dict[str, Any] = self.az.json("vmss", "rolling-upgrade", "get-latest",
                                                  *VMSS)
            code = latest["runningStatus"]["code"]
            history = self.az.json("vmss", "get-os-upgrade-history", *VMSS)
            targets = [h["properties"]["targetImageReference"].get("version")
                       for h in history]
            if code != "RollingForward" and version in targets:
                return latest
            assert time.monotonic() < deadline, f"no finished run to {version}: {latest}"
            time.sleep(1)

    def power_states(self) -> dict[str, str]:
        instances = self.az.json("vmss", "list-instances", *VMSS, "--expand", "instanceView")
        return {vm["instanceId"]: next(
            (s["code"] for s in vm["instanceView"]["statuses"]
             if s["code"].startswith("PowerState/")), "none") for vm in instances}


def test_an_operators_whole_story_with_az(server: Server, tmp_path: Path) -> None:
    az = signed_in(server, tmp_path / "azure")
    story = Story(server, az)
    with step("group create"):
        group = az.json("group", "create", "-n", RG, "-l", "westus")
        assert group["properties"]["provisioningState"] == "Succeeded"
    story.publish("1.0.0")

    with step("vmss create"):
        created = az.json("vmss", "create", *VMSS, "--image",
                          "Canonical:UbuntuServer:18.04-LTS:latest", "--instance-count", "3",
                          "--upgrade-policy-mode", "Automatic", "--orchestration-mode",
                          "Uniform", "--admin-username", "azureuser", "--admin-password",
                          "Story-Pass-1234", "--vm-sku", "Standard_D2s_v3")
        assert created["vmss"]["provisioningState"] == "Succeeded"
        story.body = story.get()
        assert story.body["sku"]["capacity"] == 3
        assert story.body[  # latest resolved
            "properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"][
            "exactVersion"] == "1.0.0"
        assert len(az.json("vmss", "list-instances", *VMSS)) == 3
        assert "adminPassword" not in str(story.body)

    extensions = "properties.virtualMachineProfile.extensionProfile.extensions"
    story.write("add the Application Health extension", {extensions: ANY},
                "vmss", "extension", "set", "--vmss-name", NAME, "-g", RG,
                "-n", "ApplicationHealthLinux", "--publisher", "Microsoft.ManagedServices",
                "--version", "1.0", "--settings",
                '{"protocol": "http", "port": 80, "requestPath": "/"}')
    (health,) = story.body["properties"]["virtualMachineProfile"]["extensionProfile"][
        "extensions"]
    assert health["properties"]["type"] == "ApplicationHealthLinux"

    story.write("turn automatic OS upgrade on", {
        f"{AUTO}.enableAutomaticOSUpgrade": True, f"{AUTO}.disableAutomaticRollback": False,
        f"{AUTO}.osRollingUpgradeDeferral": ANY, f"{AUTO}.useRollingUpgradePolicy": ANY},
        "vmss", "update", *VMSS, "--enable-auto-os-upgrade", "true")

    story.write("scale to 4", {"sku.capacity": 4},
                "vmss", "scale", *VMSS, "--new-capacity", "4")
    assert len(az.json("vmss", "list-instances", *VMSS)) == 4

    policy = "properties.upgradePolicy.rollingUpgradePolicy"
    story.write("one policy field", {f"{policy}.maxBatchInstancePercent": 10,
                                     # the rest of the policy appears with Azure's defaults
                                     **{f"{policy}.{k}": ANY for k in (
                                         "maxUnhealthyInstancePercent",
                                         "maxUnhealthyUpgradedInstancePercent",
                                         "pauseTimeBetweenBatches", "enableCrossZoneUpgrade",
                                         "prioritizeUnhealthyInstances", "maxSurge",
                                         "rollbackFailedInstancesOnPolicyBreach")}},
                "vmss", "update", *VMSS, "--max-batch-instance-percent", "10")
    assert story.body["properties"]["upgradePolicy"]["rollingUpgradePolicy"][
        "maxBatchInstancePercent"] == 10
    # az's generic --set: a GET, the one path changed in it, the whole body PUT back.
    story.write("one policy field with --set",
                {f"{policy}.prioritizeUnhealthyInstances": True},
                "vmss", "update", *VMSS, "--set",
                "upgradePolicy.rollingUpgradePolicy.prioritizeUnhealthyInstances=true")

    with step("publish 1.1.0 and watch the automatic run"):
        story.publish("1.1.0")
        latest = story.wait_for_run("1.1.0")
        assert latest["runningStatus"]["code"] == "Completed", latest
        assert latest["progress"]["successfulInstanceCount"] == 4, latest
        after = story.get()
        assert_only_changed("the automatic run", story.body, after, {EXACT: "1.1.0"})
        story.body = after
    with step("history"):
        history = az.json("vmss", "get-os-upgrade-history", *VMSS)
        first = history[0]["properties"]
        assert first["startedBy"] == "Platform"
        assert first["targetImageReference"]["version"] == "1.1.0"
        assert first["runningStatus"]["code"] == "Completed"

    story.write("turn automatic OS upgrade off", {f"{AUTO}.enableAutomaticOSUpgrade": False},
                "vmss", "update", *VMSS, "--enable-auto-os-upgrade", "false")
    with step("a manual rolling upgrade to 1.2.0"):
        story.publish("1.2.0")
        az.ok("vmss", "rolling-upgrade", "start", *VMSS)
        latest = az.json("vmss", "rolling-upgrade", "get-latest", *VMSS)
        assert latest["runningStatus"]["code"] == "Completed", latest
        history = az.json("vmss", "get-os-upgrade-history", *VMSS)
        assert history[0]["properties"]["startedBy"] == "User"
        after = story.get()
        assert_only_changed("the manual run", story.body, after, {EXACT: "1.2.0"})
        story.body = after
    with step("start a run to 1.3.0 and cancel it"):
        story.publish("1.3.0")
        az.ok("vmss", "rolling-upgrade", "start", *VMSS, "--no-wait")
        az.ok("vmss", "rolling-upgrade", "cancel", *VMSS)
        latest = az.json("vmss", "rolling-upgrade", "get-latest", *VMSS)
        assert latest["runningStatus"]["code"] == "Cancelled", latest
        after = story.get()
        # A cancelled run changes no model: the scale set still resolves to 1.2.0.
        assert_only_changed("the cancelled run", story.body, after, {})
        story.body = after

    with step("reimage instance 1"):
        before = az.json("vmss", "show", *VMSS, "--instance-id", "1")
        az.ok("vmss", "reimage", *VMSS, "--instance-ids", "1")
        after = az.json("vmss", "show", *VMSS, "--instance-id", "1")
        assert after["storageProfile"]["osDisk"]["name"] != \
            before["storageProfile"]["osDisk"]["name"]
        assert_only_changed("reimage", story.body, story.get(), {})

    with step("power: stop, deallocate, start, restart"):
        az.ok("vmss", "stop", *VMSS, "--instance-ids", "0")
        az.ok("vmss", "deallocate", *VMSS, "--instance-ids", "2")
        states = story.power_states()
        assert states["0"] == "PowerState/stopped" and states["2"] == \
            "PowerState/deallocated", states
        assert states["1"] == states["3"] == "PowerState/running", states
        az.ok("vmss", "start", *VMSS)
        az.ok("vmss", "restart", *VMSS, "--instance-ids", "1")
        assert set(story.power_states().values()) == {"PowerState/running"}
        assert_only_changed("power actions", story.body, story.get(), {})

    story.write("delete instance 3", {"sku.capacity": 3},
                "vmss", "delete-instances", *VMSS, "--instance-ids", "3")
    assert sorted(vm["instanceId"] for vm in az.json("vmss", "list-instances", *VMSS)) == \
        ["0", "1", "2"]

    with step("delete the scale set and its group"):
        az.ok("vmss", "delete", *VMSS)
        gone = az.run("vmss", "show", *VMSS)
        assert gone.returncode != 0 and "ResourceNotFound" in gone.stderr, gone.stderr
        az.ok("group", "delete", "-n", RG, "--yes")
        assert az.run("group", "exists", "-n", RG).stdout.strip() == "false"


__all__ = ["CHANGED"]  # kept importable for stories that need it
