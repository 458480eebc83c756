"""``Microsoft.Resources/deployments`` in-process: templates deployed through the app's own routes.

A template with a load balancer and a scale set depending on it; outputs with
``reference()``; validate; a failing resource fails the deployment with the
resource's error in its details; unknown functions and types are refused
with nothing created; a second PUT while one runs is refused; a restarted
server fails a deployment it was running instead of leaving it Running.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api import deployments as runs
from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.support import IMAGE, World

SUB = "00000000-0000-0000-0000-000000000001"
GROUP = f"/subscriptions/{SUB}/resourceGroups/web"
DEPLOYMENTS = f"{GROUP}/providers/Microsoft.Resources/deployments"
RV = "?api-version=2024-11-01"
NET = f"{GROUP}/providers/Microsoft.Network"
VMSS = f"{GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets"
AZ_TEMPLATES = Path(__file__).parent / "az_templates"


class Api:
    """The app over a World whose reconciler is driven by a background thread, as serve's
    loop would, so scale-set LROs end while a deployment waits for them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.context = ApiContext(store=world.store, clock=world.clock,
                                  settings=world.settings, auth_required=False)
        self.app = create_app(self.context)
        self.client = TestClient(self.app, base_url="https://testserver")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._reconcile, daemon=True)

    def _reconcile(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.world.settle()
            time.sleep(0.02)

    def __enter__(self) -> Api:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def group(self, name: str = "web") -> None:
        r = self.client.put(f"/subscriptions/{SUB}/resourceGroups/{name}{RV}",
                            json={"location": "westus"})
        assert r.status_code in (200, 201), r.text

    def deploy(self, name: str, template: dict[str, Any],
               parameters: dict[str, Any] | None = None) -> Any:
        return self.client.put(f"{DEPLOYMENTS}/{name}{RV}", json={"properties": {
            "template": template, "parameters": parameters or {}, "mode": "Incremental"}})

    def wait(self, name: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get(f"{DEPLOYMENTS}/{name}{RV}")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["properties"]["provisioningState"] in ("Succeeded", "Failed", "Canceled"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"deployment {name} did not end: {body}")


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    with Api(world) as a:
        a.group()
        yield a


def template(*resources: dict[str, Any], outputs: dict[str, Any] | None = None,
             parameters: dict[str, Any] | None = None,
             variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"$schema": "https://schema.management.azure.com/schemas/2015-01-01/"
                       "deploymentTemplate.json#", "contentVersion": "1.0.0.0",
            "parameters": parameters or {}, "variables": variables or {},
            "resources": list(resources), "outputs": outputs or {}}


def load_balancer(name: str = "webLB") -> dict[str, Any]:
    return {"type": "Microsoft.Network/loadBalancers", "apiVersion": "2024-05-01",
            "name": name, "location": "[resourceGroup().location]",
            "properties": {"probes": [{"name": "http", "properties": {
                "protocol": "Http", "port": 80, "requestPath": "/health"}}]}}


def scale_set(name: str = "web", capacity: Any = 2, lb: str = "webLB") -> dict[str, Any]:
    return {
        "type": "Microsoft.Compute/virtualMachineScaleSets", "apiVersion": "2024-11-01",
        "name": name, "location": "[resourceGroup().location]",
        "dependsOn": [f"[resourceId('Microsoft.Network/loadBalancers', '{lb}')]"],
        "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "properties": {"upgradePolicy": {"mode": "Automatic"}, "virtualMachineProfile": {
            "osProfile": {"computerNamePrefix": "[concat(parameters('prefix'), 'vm')]",
                          "adminUsername": "azureuser",
                          "adminPassword": "[parameters('adminPassword')]"},
            "storageProfile": {"imageReference": {**IMAGE, "version": "latest"}},
            "networkProfile": {"healthProbe": {
                "id": f"[concat(resourceId('Microsoft.Network/loadBalancers', '{lb}'), "
                      "'/probes/http')]"}}}}}


PARAMETERS = {"prefix": {"type": "string", "defaultValue": "web"},
              "adminPassword": {"type": "securestring"}}


def test_a_load_balancer_and_a_scale_set_depending_on_it_deploy_in_order(api: Api) -> None:
    t = template(load_balancer(), scale_set(), parameters=PARAMETERS, outputs={
        "VMSS": {"type": "object", "value": "[reference(resourceId('Microsoft.Compute/"
                 "virtualMachineScaleSets', 'web'), providers('Microsoft.Compute', "
                 "'virtualMachineScaleSets').apiVersions[0])]"},
        "probeId": {"type": "string", "value": "[reference('webLB').probes[0].id]"}})
    r = api.deploy("d1", t, {"adminPassword": {"value": "S3cret!pass"}})
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["provisioningState"] == "Accepted"
    assert "operationStatuses" in r.headers["Azure-AsyncOperation"]
    assert r.headers["Location"].endswith("&monitor=true")

    done = api.wait("d1")
    props = done["properties"]
    assert props["provisioningState"] == "Succeeded", props.get("error")
    # ARM writes output names camel-cased: az reads result['vmss'] from output 'VMSS'.
    vmss = props["outputs"]["vmss"]
    assert vmss["type"] == "Object"
    assert vmss["value"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] == "webvm"
    assert props["outputs"]["probeId"]["value"].lower() == f"{NET}/loadBalancers/webLB/" \
        "probes/http".lower()
    # The secure parameter is never shown; the plain one is.
    assert props["parameters"] == {"prefix": {"type": "String", "value": "web"},
                                   "adminPassword": {"type": "SecureString"}}
    assert "S3cret!pass" not in json.dumps(done)
    assert [d["resourceName"] for d in props["dependencies"]] == ["web"]

    # The resources exist, made by their own routes (the scale set's instances too).
    vm = api.client.get(f"{VMSS}/web?api-version=2024-11-01").json()
    assert vm["properties"]["provisioningState"] == "Succeeded"
    assert vm["sku"]["capacity"] == 2
    instances = api.client.get(f"{VMSS}/web/virtualMachines?api-version=2024-11-01").json()
    assert len(instances["value"]) == 2

    ops = api.client.get(f"{DEPLOYMENTS}/d1/operations{RV}").json()["value"]
    by_name = {o["properties"]["targetResource"]["resourceName"]: o for o in ops}
    assert set(by_name) == {"webLB", "web"}
    assert all(o["properties"]["provisioningState"] == "Succeeded" for o in ops)
    assert by_name["webLB"]["properties"]["statusCode"] == "Created"
    # The scale set started only after the load balancer had ended.
    lb_end = by_name["webLB"]["properties"]["timestamp"]
    assert by_name["web"]["properties"]["timestamp"] >= lb_end
    one = api.client.get(f"{DEPLOYMENTS}/d1/operations/{by_name['web']['operationId']}{RV}")
    assert one.status_code == 200 and one.json() == by_name["web"]

    status = api.client.get(r.headers["Azure-AsyncOperation"]).json()
    assert status == {"status": "Succeeded"}
    final = api.client.get(r.headers["Location"])
    assert final.status_code == 200 and final.json()["name"] == "d1"

    listed = api.client.get(f"{DEPLOYMENTS}/{RV}").json()["value"]
    assert [d["name"] for d in listed] == ["d1"]


def test_a_resource_copy_loop_makes_every_instance(api: Api) -> None:
    lb = load_balancer("[concat('lb', copyIndex(1))]")
    lb["copy"] = {"name": "lbs", "count": "[length(parameters('names'))]"}
    t = template(lb, parameters={"names": {"type": "array", "defaultValue": ["a", "b", "c"]}},
                 outputs={"ids": {"type": "array", "copy": {
                     "count": 3, "input": "[resourceId('Microsoft.Network/loadBalancers', "
                                          "concat('lb', copyIndex(1)))]"}}})
    assert api.deploy("copies", t).status_code == 201
    done = api.wait("copies")
    assert done["properties"]["provisioningState"] == "Succeeded", done["properties"]
    for n in (1, 2, 3):
        r = api.client.get(f"{NET}/loadBalancers/lb{n}?api-version=2024-05-01")
        assert r.status_code == 200
    assert done["properties"]["outputs"]["ids"]["value"][2].endswith("/loadBalancers/lb3")


def test_a_failing_resource_fails_the_deployment_with_its_error(api: Api) -> None:
    bad = scale_set(capacity=-1)  # the scale-set route refuses a negative capacity
    t = template(load_balancer(), bad, parameters=PARAMETERS)
    assert api.deploy("bad", t, {"adminPassword": {"value": "S3cret!pass"}}).status_code == 201
    done = api.wait("bad")
    error = done["properties"]["error"]
    assert done["properties"]["provisioningState"] == "Failed"
    assert error["code"] == "DeploymentFailed"
    assert "deployment operations" in error["message"]
    [detail] = error["details"]
    assert detail["target"].endswith("/virtualMachineScaleSets/web")
    assert detail["code"] == "InvalidParameter" and "capacity" in json.dumps(detail)
    ops = api.client.get(f"{DEPLOYMENTS}/bad/operations{RV}").json()["value"]
    failed = [o for o in ops if o["properties"]["provisioningState"] == "Failed"]
    assert len(failed) == 1 and failed[0]["properties"]["statusCode"] == "BadRequest"
    assert failed[0]["properties"]["statusMessage"]["error"]["code"] == "InvalidParameter"
    # The load balancer before it was deployed; nothing was rolled back (as ARM).
    assert api.client.get(f"{NET}/loadBalancers/webLB?api-version=2024-05-01").status_code == 200
    status = api.client.get(f"{DEPLOYMENTS}/bad{RV}").json()
    assert status["properties"]["provisioningState"] == "Failed"


@pytest.mark.parametrize(("resource", "code", "named"), [
    ({**load_balancer(), "name": "[shout('lb')]"}, "InvalidTemplate", "'shout'"),
    ({"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
      "name": "store1", "location": "westus"}, "InvalidTemplateDeployment",
     "Microsoft.Storage/storageAccounts"),
    ({**load_balancer(), "dependsOn": ["nothere"]}, "InvalidTemplate", "'nothere'"),
])
def test_an_unknown_function_type_or_dependency_is_refused_and_nothing_created(
        api: Api, resource: dict[str, Any], code: str, named: str) -> None:
    t = template(load_balancer("first"), resource)
    for r in (api.deploy("refused", t),
              api.client.post(f"{DEPLOYMENTS}/refused/validate{RV}",
                              json={"properties": {"template": t, "mode": "Incremental"}})):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert named in json.dumps(r.json())
    assert api.client.get(f"{DEPLOYMENTS}/refused{RV}").status_code == 404
    assert api.client.get(f"{NET}/loadBalancers/first?api-version=2024-05-01"
                          ).status_code == 404


def test_validate_answers_the_resources_and_stores_nothing(api: Api) -> None:
    t = template(load_balancer(), scale_set(), parameters=PARAMETERS)
    r = api.client.post(f"{DEPLOYMENTS}/v1/validate{RV}", json={"properties": {
        "template": t, "parameters": {"adminPassword": {"value": "x"}},
        "mode": "Incremental"}})
    assert r.status_code == 200, r.text
    ids = [v["id"] for v in r.json()["properties"]["validatedResources"]]
    assert ids == [f"{NET}/loadBalancers/webLB", f"{VMSS}/web"]
    assert api.client.get(f"{DEPLOYMENTS}/v1{RV}").status_code == 404
    missing = api.client.post(f"{DEPLOYMENTS}/v1/validate{RV}", json={"properties": {
        "template": t, "mode": "Incremental"}})
    assert missing.status_code == 400
    assert "adminPassword" in missing.json()["error"]["message"]


@pytest.mark.parametrize(("properties", "target"), [
    ({"templateLink": {"uri": "https://example.com/t.json"}}, "properties.templateLink"),
    ({"template": {}, "parametersLink": {"uri": "https://x"}}, "properties.parametersLink"),
    ({"template": {}, "mode": "Complete"}, "properties.mode"),
])
def test_links_and_complete_mode_are_refused_clearly(api: Api, properties: dict[str, Any],
                                                      target: str) -> None:
    r = api.client.put(f"{DEPLOYMENTS}/x{RV}", json={"properties": {
        "mode": "Incremental", **properties}})
    assert r.status_code == 400
    assert r.json()["error"]["target"] == target


def test_a_deployment_into_a_missing_group_is_404(api: Api) -> None:
    r = api.client.put(f"/subscriptions/{SUB}/resourceGroups/nope/providers/"
                       f"Microsoft.Resources/deployments/d{RV}",
                       json={"properties": {"template": template(), "mode": "Incremental"}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceGroupNotFound"


def test_a_second_put_while_running_is_refused_and_cancel_ends_it(api: Api) -> None:
    t = template(load_balancer(), scale_set(capacity=3), parameters=PARAMETERS)
    with api._lock:  # the reconciler holds still: the scale set's LRO cannot end
        assert api.deploy("busy", t, {"adminPassword": {"value": "p"}}).status_code == 201
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ops = api.client.get(f"{DEPLOYMENTS}/busy/operations{RV}").json()["value"]
            if any(o["properties"]["targetResource"]["resourceName"] == "web" for o in ops):
                break
            time.sleep(0.02)
        again = api.deploy("busy", t, {"adminPassword": {"value": "p"}})
        assert again.status_code == 409 and again.json()["error"]["code"] == "DeploymentActive"
        assert api.client.delete(f"{DEPLOYMENTS}/busy{RV}").status_code == 409
        assert api.client.post(f"{DEPLOYMENTS}/busy/cancel{RV}").status_code == 204
    done = api.wait("busy")
    # The scale set in flight finished; nothing new would have started.
    assert done["properties"]["provisioningState"] == "Canceled"
    assert api.client.delete(f"{DEPLOYMENTS}/busy{RV}").status_code == 204
    assert api.client.get(f"{DEPLOYMENTS}/busy{RV}").status_code == 404


def test_a_restart_fails_a_running_deployment_and_a_new_put_finishes_it(api: Api) -> None:
    t = template(load_balancer(), scale_set(), parameters=PARAMETERS)
    with api._lock:  # the reconciler holds still, so the deployment is mid-way
        assert api.deploy("r1", t, {"adminPassword": {"value": "p"}}).status_code == 201
        time.sleep(0.3)
        # A new server process on the same store: another app with another runner, which
        # sees the first one's heartbeat as stale (the first process is taken as dead).
        restarted = create_app(ApiContext(store=api.world.store, clock=api.world.clock,
                                          settings=api.world.settings, auth_required=False))
        runs.runner_of(restarted, api.context).stale_after = 0.0
        other = TestClient(restarted, base_url="https://testserver")
        props = other.get(f"{DEPLOYMENTS}/r1{RV}").json()["properties"]
        assert props["provisioningState"] == "Failed"
        detail = props["error"]["details"][0]
        assert detail["code"] == "ServerRestarted"
        assert "PUT the deployment again" in detail["message"]
        assert "/virtualMachineScaleSets/web" in detail["message"]  # it had not finished
        again = other.put(f"{DEPLOYMENTS}/r1{RV}", json={"properties": {
            "template": t, "parameters": {"adminPassword": {"value": "p"}},
            "mode": "Incremental"}})
        assert again.status_code == 200, again.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = other.get(f"{DEPLOYMENTS}/r1{RV}").json()["properties"]["provisioningState"]
        if state in ("Succeeded", "Failed"):
            break
        time.sleep(0.05)
    assert state == "Succeeded"
    # The first run, declared dead, wrote nothing over the second.
    time.sleep(0.3)
    assert api.client.get(f"{DEPLOYMENTS}/r1{RV}").json()["properties"][
        "provisioningState"] == "Succeeded"
    other.close()


def test_az_vmss_create_uniform_template_plans_as_az_expects(api: Api) -> None:
    """The template az 2.91 sent for ``vmss create --orchestration-mode Uniform`` (captured
    from its request): validate accepts it when every type is served, else names the
    missing types."""
    sent = json.loads((AZ_TEMPLATES / "vmss_uniform.json").read_text())["properties"]
    t = copy.deepcopy(sent["template"])
    r = api.client.post(f"{DEPLOYMENTS}/az/validate{RV}", json={"properties": {
        "template": t, "parameters": sent.get("parameters", {}), "mode": "incremental"}})
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "InvalidTemplateDeployment", r.text
        missing = {d["message"].split("for type '")[1].split("'")[0]
                   for d in r.json()["error"]["details"]}
        assert missing <= {"Microsoft.Network/publicIPAddresses",
                           "Microsoft.Network/networkSecurityGroups",
                           "Microsoft.Network/loadBalancers/inboundNatRules"}, missing
    else:
        assert r.status_code == 200, r.text
        names = [v["id"].rsplit("/", 1)[-1] for v in r.json()["properties"]["validatedResources"]]
        assert names[-1] == "web"
