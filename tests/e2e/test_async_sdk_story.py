"""An operator's whole story with the async Azure SDK for Python, unmodified, on a live serve.

Sign in (``scaleset sp create``, then azure-identity's async ``ClientSecretCredential``
against the server's own authority), create a scale set whose health signal is the
Application Health extension, with automatic OS upgrade on and image ``latest``, scale it,
change one rolling-upgrade field, publish a new image version and watch the automatic run
it triggers to the end, read the OS upgrade history, run a manual upgrade and cancel
another, reimage an instance, stop, deallocate, start and restart instances, delete
one, delete the scale set. After every write the scale set is
read back through the SDK and compared with the read before it: only the fields the write
named may differ (``tests/e2e/story.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

pytest.importorskip("aiohttp", reason="azure-core's async transport needs aiohttp "
                    "(the test extras install it: make install)")
pytest.importorskip("azure.mgmt.compute.aio")
pytest.importorskip("azure.identity.aio")
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential
from azure.mgmt.compute import models as m
from azure.mgmt.compute.aio import ComputeManagementClient

from tests.e2e.server import Server, running_server
from tests.e2e.story import CHANGED, assert_only_changed, create_service_principal, step
from tests.e2e.test_azure_sdk import publish

SUB = "00000000-0000-0000-0000-0000000000aa"  # publish() writes the images under it
RG = "rg-async-story"
NAME = "web"
POLL = 0.2  # seconds between the SDK's LRO polls (the server says Retry-After: 1)
STORY_TIMEOUT = 240

T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("async-story")) as s:
        yield s


def raw(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """``cls=`` for an SDK call: the body as the server sent it, not the SDK's model."""
    return pipeline_response.http_response.json()


async def eventually(predicate: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 60) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.1)


def scale_set() -> m.VirtualMachineScaleSet:
    return m.VirtualMachineScaleSet(
        location="westus",
        sku=m.Sku(name="Standard_D2s_v3", tier="Standard", capacity=3),
        upgrade_policy=m.UpgradePolicy(
            mode="Rolling",
            rolling_upgrade_policy=m.RollingUpgradePolicy(
                max_batch_instance_percent=20, max_unhealthy_instance_percent=20,
                max_unhealthy_upgraded_instance_percent=20, pause_time_between_batches="PT0S"),
            automatic_os_upgrade_policy=m.AutomaticOSUpgradePolicy(
                enable_automatic_os_upgrade=True, disable_automatic_rollback=False)),
        virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
            os_profile=m.VirtualMachineScaleSetOSProfile(
                computer_name_prefix="web", admin_username="azureuser",
                admin_password="Never-Echo-1"),
            storage_profile=m.VirtualMachineScaleSetStorageProfile(
                image_reference=m.ImageReference(publisher="Canonical", offer="UbuntuServer",
                                                 sku="18.04-LTS", version="latest"),
                os_disk=m.VirtualMachineScaleSetOSDisk(create_option="FromImage")),
            # The one health signal (a probe beside it is refused with automatic upgrade).
            extension_profile=m.VirtualMachineScaleSetExtensionProfile(extensions=[
                m.VirtualMachineScaleSetExtension(
                    name="health", properties=m.VirtualMachineScaleSetExtensionProperties(
                        publisher="Microsoft.ManagedServices", type="ApplicationHealthLinux",
                        type_handler_version="1.0",
                        settings={"protocol": "http", "port": 80, "requestPath": "/health"}))])),
    )


EXACT = "properties.virtualMachineProfile.storageProfile.imageReference.exactVersion"
POLICY = "properties.upgradePolicy"


async def story(server: Server) -> None:
    with step("sign in: scaleset sp create, then ClientSecretCredential"):
        sp = create_service_principal(server, "async-story")
        credential = ClientSecretCredential(sp.tenant, sp.app_id, sp.password,
                                            authority=server.endpoint,
                                            connection_verify=str(server.ca))
        scope = f"{server.endpoint}/.default"
    async with credential, ComputeManagementClient(
            credential, SUB, base_url=server.endpoint, credential_scopes=[scope],
            connection_verify=str(server.ca), retry_total=0) as compute:
        vmss = compute.virtual_machine_scale_sets
        vms = compute.virtual_machine_scale_set_vms
        upgrades = compute.virtual_machine_scale_set_rolling_upgrades

        async def get() -> dict[str, Any]:
            body: dict[str, Any] = await vmss.get(RG, NAME, cls=raw)
            return body

        async def instances() -> list[m.VirtualMachineScaleSetVM]:
            return [v async for v in vms.list(RG, NAME, expand="instanceView")]

        async def all_healthy(count: int) -> list[m.VirtualMachineScaleSetVM] | None:
            found = await instances()
            healthy = [v for v in found if v.instance_view.vm_health is not None
                       and v.instance_view.vm_health.status.code == "HealthState/healthy"]
            return found if len(found) == count and len(healthy) == count else None

        with step("sign in: the authority issues an access token"):
            token = (await credential.get_token(scope)).token
            assert token.count(".") == 2 and token != server.token, \
                "expected a JWT from the server's authority, not the bootstrap token"

        with step("the publisher publishes image 1.0.0"):
            publish(server, "1.0.0")

        with step("create the scale set"):
            created = await (await vmss.begin_create_or_update(
                RG, NAME, scale_set(), polling_interval=POLL)).result()
            assert created.provisioning_state == "Succeeded", created.provisioning_state
            image = created.virtual_machine_profile.storage_profile.image_reference
            assert (image.version, image.exact_version) == ("latest", "1.0.0"), image
            assert created.virtual_machine_profile.os_profile.admin_password is None
            assert [s.name async for s in vmss.list(RG)] == [NAME]
            before = await get()
            assert before["sku"]["capacity"] == 3
            [health] = before["properties"]["virtualMachineProfile"]["extensionProfile"][
                "extensions"]
            assert health["properties"]["type"] == "ApplicationHealthLinux", health
            assert before["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"][
                "enableAutomaticOSUpgrade"] is True
            await eventually(lambda: all_healthy(3), "3 healthy instances")

        with step("scale to 4 instances"):
            await (await vmss.begin_update(RG, NAME, m.VirtualMachineScaleSetUpdate(
                sku=m.Sku(capacity=4)), polling_interval=POLL)).result()
            after = await get()
            assert_only_changed("scale", before, after, {"sku.capacity": 4})
            # The new instance must be healthy first: the automatic run's gate counts it.
            found = await eventually(lambda: all_healthy(4), "4 healthy instances")
            assert sorted(v.instance_id for v in found) == ["0", "1", "2", "3"]
            before = after

        with step("change one rolling-upgrade field"):
            await (await vmss.begin_update(RG, NAME, m.VirtualMachineScaleSetUpdate(
                upgrade_policy=m.UpgradePolicy(rolling_upgrade_policy=m.RollingUpgradePolicy(
                    max_unhealthy_upgraded_instance_percent=50))),
                polling_interval=POLL)).result()
            after = await get()
            assert_only_changed("policy", before, after, {
                f"{POLICY}.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent": 50})
            before = after

        with step("publish 1.1.0 and watch the automatic run to its end"):
            publish(server, "1.1.0")
            seen: list[tuple[str, int, int, int, int]] = []

            async def run_ended() -> m.RollingUpgradeStatusInfo | None:
                try:
                    latest = await upgrades.get_latest(RG, NAME)
                except ResourceNotFoundError:  # not started yet
                    return None
                p = latest.progress
                seen.append((latest.running_status.code, p.successful_instance_count,
                             p.in_progress_instance_count, p.pending_instance_count,
                             p.failed_instance_count))
                ended = latest.running_status.code in ("Completed", "Faulted", "Cancelled")
                return latest if ended else None

            latest = await eventually(run_ended, "the automatic run to end")
            assert latest.running_status.code == "Completed", (latest.running_status, seen)
            assert latest.progress.successful_instance_count == 4, seen
            assert latest.policy.max_unhealthy_upgraded_instance_percent == 50, latest.policy
            for code, ok, running, pending, failed in seen:
                assert code in ("RollingForward", "Completed"), seen
                assert ok + running + pending + failed == 4 and failed == 0, seen
            done = [ok for _, ok, _, _, _ in seen]
            assert done == sorted(done), f"progress went backwards: {seen}"
            after = await get()
            assert_only_changed("automatic run", before, after, {EXACT: "1.1.0"})
            assert {v.storage_profile.image_reference.exact_version
                    for v in await instances()} == {"1.1.0"}
            before = after

        with step("read the OS upgrade history"):
            [run] = [h async for h in vmss.get_os_upgrade_history(RG, NAME)]
            assert run.properties.started_by == "Platform", run.properties.started_by
            assert run.properties.running_status.code == "Completed"
            assert run.properties.target_image_reference.version == "1.1.0"
            assert run.properties.progress.successful_instance_count == 4

        with step("turn automatic OS upgrade off"):
            await (await vmss.begin_update(RG, NAME, m.VirtualMachineScaleSetUpdate(
                upgrade_policy=m.UpgradePolicy(
                    automatic_os_upgrade_policy=m.AutomaticOSUpgradePolicy(
                        enable_automatic_os_upgrade=False))),
                polling_interval=POLL)).result()
            after = await get()
            assert_only_changed("automatic off", before, after, {
                f"{POLICY}.automaticOSUpgradePolicy.enableAutomaticOSUpgrade": False})
            before = after

        with step("publish 1.2.0 and run a manual rolling upgrade to it"):
            publish(server, "1.2.0")
            # The operation ends with the run it starts.
            await (await upgrades.begin_start_os_upgrade(
                RG, NAME, polling_interval=POLL)).result()
            latest = await upgrades.get_latest(RG, NAME)
            assert latest.running_status.code == "Completed", latest.running_status
            history = [h async for h in vmss.get_os_upgrade_history(RG, NAME)]
            assert [(h.properties.started_by, h.properties.target_image_reference.version)
                    for h in history] == [("User", "1.2.0"), ("Platform", "1.1.0")]
            after = await get()
            assert_only_changed("manual run", before, after, {EXACT: "1.2.0"})
            before = after

        with step("publish 1.3.0, start a manual rolling upgrade and cancel it"):
            publish(server, "1.3.0")
            started = await upgrades.begin_start_os_upgrade(RG, NAME, polling_interval=POLL)
            await (await upgrades.begin_cancel(RG, NAME, polling_interval=POLL)).result()
            with pytest.raises(HttpResponseError) as cancelled:
                await started.result()  # the start's operation ends cancelled, not succeeded
            assert "cancel" in str(cancelled.value).lower(), cancelled.value
            latest = await upgrades.get_latest(RG, NAME)
            assert latest.running_status.code == "Cancelled", latest.running_status
            assert latest.progress.pending_instance_count > 0, latest.progress
            [newest, *_] = [h async for h in vmss.get_os_upgrade_history(RG, NAME)]
            assert newest.properties.started_by == "User"
            assert newest.properties.running_status.code == "Cancelled"
            assert newest.properties.target_image_reference.version == "1.3.0"
            after = await get()
            # A cancelled run changes no model: the scale set still resolves to 1.2.0.
            assert_only_changed("cancelled run", before, after, {})
            before = after

        with step("reimage instance 2"):
            vm_before = await vms.get(RG, NAME, "2", expand="instanceView", cls=raw)
            await (await vms.begin_reimage(RG, NAME, "2", polling_interval=POLL)).result()
            after = await get()
            assert_only_changed("reimage", before, after, {})
            await eventually(lambda: all_healthy(4), "instance 2 healthy again")
            # A new OS disk from the scale set's image; the data disks and the rest stay.
            vm_after = await vms.get(RG, NAME, "2", expand="instanceView", cls=raw)
            assert_only_changed("reimage (instance 2)", vm_before, vm_after, {
                "properties.storageProfile.osDisk.name": CHANGED,
                "properties.instanceView.disks.0.name": CHANGED})
            assert vm_after["properties"]["storageProfile"]["imageReference"][
                "exactVersion"] == after["properties"]["virtualMachineProfile"][
                "storageProfile"]["imageReference"]["exactVersion"]

        async def power_states() -> dict[str, str]:
            return {str(v.instance_id): next(
                (str(st.code) for st in v.instance_view.statuses or ()
                 if str(st.code).startswith("PowerState/")), "none")
                for v in await instances()}

        with step("power: stop 0, deallocate 1, start them, restart 3"):
            ids = m.VirtualMachineScaleSetVMInstanceIDs
            await (await vmss.begin_power_off(RG, NAME, ids(instance_ids=["0"]),
                                              polling_interval=POLL)).result()
            await (await vmss.begin_deallocate(RG, NAME, ids(instance_ids=["1"]),
                                               polling_interval=POLL)).result()
            states = await power_states()
            assert (states["0"], states["1"]) == ("PowerState/stopped",
                                                  "PowerState/deallocated"), states
            assert states["2"] == states["3"] == "PowerState/running", states
            await (await vmss.begin_start(RG, NAME, polling_interval=POLL)).result()
            await (await vms.begin_restart(RG, NAME, "3", polling_interval=POLL)).result()
            assert set((await power_states()).values()) == {"PowerState/running"}
            after = await get()
            assert_only_changed("power actions", before, after, {})
            before = after

        with step("delete instance 3 (delete-instances)"):
            await (await vmss.begin_delete_instances(
                RG, NAME, m.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=["3"]),
                polling_interval=POLL)).result()
            after = await get()
            assert_only_changed("delete instance 3", before, after, {"sku.capacity": 3})
            assert sorted(str(v.instance_id) for v in await instances()) == ["0", "1", "2"]

        with step("delete the scale set"):
            await (await vmss.begin_delete(RG, NAME, polling_interval=POLL)).result()
            with pytest.raises(ResourceNotFoundError):
                await vmss.get(RG, NAME)
            assert [s.name async for s in vmss.list(RG)] == []


def test_an_operator_story_with_the_async_sdk(server: Server) -> None:
    asyncio.run(asyncio.wait_for(story(server), STORY_TIMEOUT))
