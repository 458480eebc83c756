"""A whole control plane in the test's process, with real instances.

Store (SQLite), artifact store, process driver, reconcile loop thread and the
ARM API through a TestClient: the same pieces ``scaleset serve`` wires, minus
the HTTP listener. Instances are real processes on 127.x addresses; every
fixture stops them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.routes.common import scale_set_key
from scaleset.api.context import ApiContext
from scaleset.artifacts import ArtifactStore, SourceRules
from scaleset.catalog import auto_upgrade
from scaleset.catalog.auto_upgrade import PlatformImage
from scaleset.clock import SystemClock
from scaleset.drivers.process.driver import ProcessDriver
from scaleset.model.extensions import ExtensionKind, kind_of
from scaleset.reconcile.settings import ShellSettings, SourcePolicy
from scaleset.reconcile.shell import Reconciler
from scaleset.server.loop import ReconcileLoop
from scaleset.store.repository import Store

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
VMSS = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
PROBE_ID = LB + "/probes/http"
COMPUTE = {"api-version": "2026-04-01"}
NETWORK = {"api-version": "2024-05-01"}
IMAGE = {"publisher": "Contoso", "offer": "WebApp", "sku": "1"}
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
AUTO_UPGRADE_IMAGES = auto_upgrade.merged(auto_upgrade.DEFAULT_IMAGES,
                                          [PlatformImage(**IMAGE)])
"""The test image may upgrade automatically (as ``serve --auto-upgrade-image`` allows)."""
T = TypeVar("T")


class Fleet:
    def __init__(self, data_dir: Path, store: Store, *, health_timeout: float = 6.0) -> None:
        self.data_dir = data_dir
        self.store = store
        self.artifacts = ArtifactStore(data_dir / "images", data_dir=data_dir)
        self._loop: ReconcileLoop | None = None
        self.driver = ProcessDriver(data_dir / "instances", self.artifacts,
                                    on_change=self._wake, stop_grace=2.0,
                                    sources=SourceRules(roots=(data_dir.parent,),
                                                        protected=(data_dir,),
                                                        allow_private=True))
        clock = SystemClock()
        self.reconciler = Reconciler(
            store=store, driver=self.driver, clock=clock,
            settings=ShellSettings(health_timeout=timedelta(seconds=health_timeout),
                                   auto_upgrade_images=AUTO_UPGRADE_IMAGES,
                                   # A local file server stands in for storage (loopback).
                                   sources=SourcePolicy(roots=(ROOT / "examples",
                                                               data_dir.parent),
                                                        allow_private=True)))
        self._loop = ReconcileLoop(reconciler=self.reconciler, store=store, clock=clock,
                                   resync=timedelta(seconds=0.5))
        context = ApiContext(store=store, clock=clock, settings=self.reconciler.settings,
                             notify=self._loop.notify, auth_required=False,
                             artifacts=self.artifacts, console_log=self.driver.console_log)
        self.client = TestClient(create_app(context), base_url="https://testserver")
        self.last_operation = ""
        """The Azure-AsyncOperation URL of the last request that started one."""
        self._loop.start()

    def _wake(self, scale_set_id: str | None = None) -> None:
        if self._loop is not None:
            self._loop.notify(scale_set_id)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.stop()
        self.driver.close()
        self.client.close()

    # -- requests ------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *,
             params: dict[str, str] | None = None, expect: int | tuple[int, ...] = (200, 201, 202)
             ) -> Any:
        response = self.client.request(method, path, json=body, params=params or COMPUTE)
        if "Azure-AsyncOperation" in response.headers:
            self.last_operation = response.headers["Azure-AsyncOperation"]
        codes = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in codes, (method, path, response.status_code,
                                                response.text)
        return response.json() if response.content else None

    def publish(self, version: str, source: Path | None = None) -> Any:
        return self.call("PUT", f"{VERSIONS}/{version}", {
            "location": "westus",
            "properties": {"source": {"path": str(source or WEBAPP / version)}}})

    def create_load_balancer(self, *, interval: int = 1, probes: int = 1) -> None:
        self.call("PUT", LB, {"location": "westus", "sku": {"name": "Standard"}, "properties": {
            "probes": [{"name": "http", "properties": {
                "protocol": "Http", "port": 8080, "requestPath": "/health",
                "intervalInSeconds": interval, "numberOfProbes": probes}}]}},
            params=NETWORK)

    def create_scale_set(self, name: str, *, capacity: int, probe: bool = True,
                         extensions: list[dict[str, Any]] | None = None,
                         custom_data: str | None = None, data_disks: int = 1,
                         max_batch: int = 50, automatic: bool = True,
                         disable_rollback: bool = False, version: str = "latest",
                         mode: str | None = None) -> Any:
        if mode is None:  # Rolling needs a health signal: without one, Manual
            mode = "Rolling" if probe or any(
                kind_of(e["properties"].get("publisher"), e["properties"].get("type"))
                is ExtensionKind.APPLICATION_HEALTH for e in extensions or []) else "Manual"
        profile: dict[str, Any] = {
            "osProfile": {"computerNamePrefix": name, "adminUsername": "azureuser"},
            "storageProfile": {
                "imageReference": {**IMAGE, "version": version},
                "dataDisks": [{"lun": lun, "createOption": "Empty", "diskSizeGB": 1}
                              for lun in range(data_disks)]},
        }
        if custom_data is not None:
            profile["osProfile"]["customData"] = base64.b64encode(custom_data.encode()).decode()
        if probe:
            profile["networkProfile"] = {"healthProbe": {"id": PROBE_ID}}
        if extensions:
            profile["extensionProfile"] = {"extensions": extensions}
        body = {"location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
                "properties": {"upgradePolicy": {
                    "mode": mode,
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": automatic,
                                                 "disableAutomaticRollback": disable_rollback},
                    "rollingUpgradePolicy": {"maxBatchInstancePercent": max_batch,
                                             "maxUnhealthyInstancePercent": 100,
                                             "maxUnhealthyUpgradedInstancePercent": 50}},
                    "virtualMachineProfile": profile}}
        return self.call("PUT", f"{VMSS}/{name}", body)

    def instances(self, name: str) -> list[dict[str, Any]]:
        body = self.call("GET", f"{VMSS}/{name}/virtualMachines",
                         params={**COMPUTE, "$expand": "instanceView"})
        items: list[dict[str, Any]] = body["value"]
        while body.get("nextLink"):
            body = self.client.get(body["nextLink"]).json()
            items += body["value"]
        return items

    def latest(self, name: str) -> Any:
        return self.call("GET", f"{VMSS}/{name}/rollingUpgrades/latest")

    def latest_status(self, name: str) -> str | None:
        response = self.client.get(f"{VMSS}/{name}/rollingUpgrades/latest", params=COMPUTE)
        if response.status_code == 404:
            return None
        return str(response.json()["properties"]["runningStatus"]["code"])

    # -- instances -------------------------------------------------------------------
    @staticmethod
    def address(instance: dict[str, Any]) -> str:
        return str(instance["properties"]["instanceView"]["privateIPAddress"])

    @staticmethod
    def health(instance: dict[str, Any]) -> str:
        return str(instance["properties"]["instanceView"]["vmHealth"]["status"]["code"])

    def page(self, instance: dict[str, Any], path: str = "/") -> str:
        return httpx.get(f"http://{self.address(instance)}:8080{path}", timeout=2,
                         trust_env=False).text

    def all_healthy(self, name: str, capacity: int) -> bool:
        items = self.instances(name)
        return len(items) == capacity and all(
            self.health(i) == "HealthState/healthy" for i in items)

    # -- more about one instance (helpers for the process tests) ---------------------
    @staticmethod
    def scale_set_id(name: str) -> str:
        """The id the store and the driver know scale set ``name`` (of ``rg1``) by."""
        return scale_set_key(SUB, "rg1", name)

    def instance(self, name: str, instance_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.call(
            "GET", f"{VMSS}/{name}/virtualMachines/{instance_id}",
            params={**COMPUTE, "$expand": "instanceView"})
        return body

    @staticmethod
    def exact_version(instance: dict[str, Any]) -> str:
        return str(instance["properties"]["storageProfile"]["imageReference"]["exactVersion"])

    @staticmethod
    def os_disk(instance: dict[str, Any]) -> str:
        return str(instance["properties"]["instanceView"]["disks"][0]["name"])

    @staticmethod
    def power(instance: dict[str, Any]) -> str:
        return next(str(s["code"]) for s in instance["properties"]["instanceView"]["statuses"]
                    if s["code"].startswith("PowerState/"))

    @staticmethod
    def extensions(instance: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``{name: status}`` of the instance view's extensions (one status each)."""
        return {e["name"]: e["statuses"][0]
                for e in instance["properties"]["instanceView"].get("extensions") or []}

    def pid(self, name: str, instance_id: str) -> int | None:
        return self.driver.pid(self.scale_set_id(name), instance_id)

    def os_disk_path(self, name: str, instance_id: str) -> Path:
        """The directory of the instance's current OS disk."""
        directory = self.driver.instance_directory(self.scale_set_id(name), instance_id)
        assert directory is not None, f"instance {instance_id} of {name} is not on the driver"
        return directory / "os" / self.os_disk(self.instance(name, instance_id))

    def console(self, name: str, instance_id: str) -> str:
        """The serial console log, read as a user reads it (boot diagnostics, then the log)."""
        vm = f"{VMSS}/{name}/virtualMachines/{instance_id}"
        located = self.call("POST", f"{vm}/retrieveBootDiagnosticsData")
        assert "/bootDiagnostics/serialConsoleLog" in located["serialConsoleLogBlobUri"]
        response = self.client.get(f"{vm}/bootDiagnostics/serialConsoleLog", params=COMPUTE)
        assert response.status_code == 200, response.text
        return str(response.text)

    def put_data(self, instance: dict[str, Any], name: str, content: bytes) -> None:
        """Write a file on the instance's first data disk through the webapp."""
        response = httpx.put(f"http://{self.address(instance)}:8080/data/{name}",
                             content=content, timeout=2, trust_env=False)
        assert response.status_code == 201, response.text

    def get_data(self, address: str, name: str) -> bytes | None:
        """A file of the first data disk of the instance at ``address``; ``None`` if absent."""
        response = httpx.get(f"http://{address}:8080/data/{name}", timeout=2, trust_env=False)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content

    def answers(self, address: str) -> bool:
        """Whether the webapp on ``address`` answers at all."""
        try:
            httpx.get(f"http://{address}:8080/", timeout=1, trust_env=False)
        except httpx.HTTPError:
            return False
        return True


def wait_for(predicate: Callable[[], T], *, timeout: float = 60.0, what: str = "condition"
             ) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
        last = predicate()
    return last
