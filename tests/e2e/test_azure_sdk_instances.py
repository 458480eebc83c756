"""The official SDKs against real instances: a load balancer made with azure-mgmt-network,
a scale set of real webapp processes made with azure-mgmt-compute, their addresses,
extension statuses and boot diagnostics read back through the SDK's own models."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("azure.mgmt.compute")
pytest.importorskip("azure.mgmt.network")
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as n

from tests.e2e.server import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
SUB = "00000000-0000-0000-0000-0000000000bb"
RG = "rg-real"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")


class StaticCredential:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, driver="process", health_timeout="10") as s:
        yield s


def _wait(predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return value


def test_the_sdks_drive_real_instances(server: Server) -> None:
    credential = StaticCredential(server.token)
    network = NetworkManagementClient(credential, SUB, base_url=server.endpoint,
                                      connection_verify=str(server.ca), retry_total=0)
    compute = ComputeManagementClient(credential, SUB, base_url=server.endpoint,
                                      connection_verify=str(server.ca), retry_total=0)
    lb = network.load_balancers.begin_create_or_update(RG, "lb", n.LoadBalancer(
        location="westus", sku=n.LoadBalancerSku(name="Standard"),
        probes=[n.Probe(name="http", protocol="Http", port=8080, request_path="/health",
                        interval_in_seconds=1, number_of_probes=1)])).result()
    assert lb.probes is not None and lb.probes[0].id is not None
    assert lb.probes[0].id.lower().endswith("/loadbalancers/lb/probes/http")
    assert [x.name for x in network.load_balancers.list(RG)] == ["lb"]

    with server.http() as http:
        r = http.put(f"{VERSIONS}/1.0.0?api-version=2026-04-01", json={
            "location": "westus",
            "properties": {"source": {"path": str(ROOT / "examples/images/webapp/1.0.0")}}})
        assert r.status_code == 201, r.text
        assert r.json()["properties"]["artifact"]["digest"].startswith("sha256:")

    health = m.VirtualMachineScaleSetExtension(
        name="health", properties=m.VirtualMachineScaleSetExtensionProperties(
            publisher="Microsoft.ManagedServices", type="ApplicationHealthLinux",
            type_handler_version="1.0",
            settings={"protocol": "http", "port": 8080, "requestPath": "/health",
                      "intervalInSeconds": 1}))
    vmss = m.VirtualMachineScaleSet(
        location="westus", sku=m.Sku(name="Standard_D2s_v3", tier="Standard", capacity=2),
        upgrade_policy=m.UpgradePolicy(
            mode="Rolling", automatic_os_upgrade_policy=m.AutomaticOSUpgradePolicy(
                enable_automatic_os_upgrade=True)),
        virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
            os_profile=m.VirtualMachineScaleSetOSProfile(computer_name_prefix="web",
                                                         admin_username="azureuser"),
            storage_profile=m.VirtualMachineScaleSetStorageProfile(
                image_reference=m.ImageReference(publisher="Contoso", offer="WebApp", sku="1",
                                                 version="latest")),
            # One health signal: the extension (a probe too is refused with auto upgrade).
            extension_profile=m.VirtualMachineScaleSetExtensionProfile(extensions=[health])))
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", vmss).result()

    def healthy() -> list[m.VirtualMachineScaleSetVM]:
        vms = list(compute.virtual_machine_scale_set_vms.list(RG, "web", expand="instanceView"))
        ok = [vm for vm in vms if vm.instance_view and vm.instance_view.vm_health
              and vm.instance_view.vm_health.status
              and vm.instance_view.vm_health.status.code == "HealthState/healthy"]
        return vms if len(ok) == 2 else []

    vms = _wait(healthy)
    for vm in vms:
        view = vm.instance_view
        assert view is not None and view.extensions is not None
        (extension,) = view.extensions
        assert extension.name == "health"
        assert extension.statuses and extension.statuses[0].code == \
            "ProvisioningState/succeeded"
        # Not an ARM field: the SDK's models are mappings of the wire JSON, so it is kept.
        address = view["privateIPAddress"]
        assert address.startswith("127.")
        page = httpx.get(f"http://{address}:8080/", timeout=3, trust_env=False).text
        assert "webapp 1.0.0" in page
        diagnostics = compute.virtual_machine_scale_set_vms.retrieve_boot_diagnostics_data(
            RG, "web", vm.instance_id)
        assert diagnostics.serial_console_log_blob_uri
        with server.http() as http:
            log = http.get(diagnostics.serial_console_log_blob_uri)
        assert log.status_code == 200 and "webapp 1.0.0 listening" in log.text

    compute.virtual_machine_scale_sets.begin_delete(RG, "web").result()
    network.load_balancers.begin_delete(RG, "lb").result()
    assert list(network.load_balancers.list(RG)) == []


def test_sigterm_stops_serve_and_its_instances_promptly_with_an_sdk_connection_open(
        server: Server) -> None:
    """An idle TLS keep-alive connection (the SDK keeps one) must not hold the shutdown."""
    network = NetworkManagementClient(StaticCredential(server.token), SUB,
                                      base_url=server.endpoint,
                                      connection_verify=str(server.ca), retry_total=0)
    network.load_balancers.begin_create_or_update(RG, "lb", n.LoadBalancer(
        location="westus", probes=[n.Probe(name="http", protocol="Http", port=8080,
                                           request_path="/health")])).result()
    with server.http() as http:
        r = http.put(f"{VERSIONS}/1.0.0?api-version=2026-04-01", json={
            "location": "westus",
            "properties": {"source": {"path": str(ROOT / "examples/images/webapp/1.0.0")}}})
        assert r.status_code == 201, r.text
    compute = ComputeManagementClient(StaticCredential(server.token), SUB,
                                      base_url=server.endpoint,
                                      connection_verify=str(server.ca), retry_total=0)
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", m.VirtualMachineScaleSet(
        location="westus", sku=m.Sku(name="Standard_D2s_v3", capacity=1),
        virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
            storage_profile=m.VirtualMachineScaleSetStorageProfile(
                image_reference=m.ImageReference(publisher="Contoso", offer="WebApp", sku="1",
                                                 version="latest"))))).result()
    vm = _wait(lambda: [v for v in compute.virtual_machine_scale_set_vms.list(
        RG, "web", expand="instanceView") if v.instance_view
        and v.instance_view.get("privateIPAddress")])[0]
    address = vm.instance_view["privateIPAddress"]
    _wait(lambda: _answers(address))
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(15)
    assert time.monotonic() - started < 10
    assert server.process.returncode == 0
    assert not _answers(address)  # the instance stopped with the control plane


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}:8080/", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
