"""A real ``scaleset serve --log-format json --metrics-token-file``: an automatic rollout is
in its log line by line and in /metrics as the API shows it, and no secret the test sent
or holds is anywhere in the log."""

from __future__ import annotations

import base64
import collections
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import TOKEN, Server, running_server, trusting

SUB = "00000000-0000-0000-0000-000000000000"
V = "?api-version=2024-07-01"
NV = "?api-version=2024-05-01"
IMAGES = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
          "Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
LB = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"
SET = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/" \
      "virtualMachineScaleSets/web"
METRICS_TOKEN = "prometheus-scrape-4f1c7d0e9a2b5c8d"
PASSWORD = "Pa55-e2e-telemetry-admin!"
CUSTOM_DATA_TEXT = "echo telemetry-custom-data-secret"
CUSTOM_DATA = base64.b64encode(CUSTOM_DATA_TEXT.encode()).decode()
PROTECTED = "protected-telemetry-setting-secret"
QUERY_SECRET = "0.AXoA-query-code-secret"
FORM_SECRET = "form-client-secret-telemetry"
STARTUP_LINES = ("CA certificate:", "First contributor token", "scaleset listening on",
                 "Client config:")
"""What serve prints on stdout (the test's log file has stdout and stderr together)."""


def scale_set() -> dict[str, Any]:
    return {
        "location": "westus", "sku": {"name": "Standard_D2s_v3", "capacity": 4},
        "properties": {
            "upgradePolicy": {"mode": "Rolling",
                              "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                              "rollingUpgradePolicy": {"maxBatchInstancePercent": 50,
                                                       "maxUnhealthyInstancePercent": 50}},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser",
                              "adminPassword": PASSWORD, "customData": CUSTOM_DATA},
                "storageProfile": {"imageReference": {
                    "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
                    "version": "latest"}},
                "networkProfile": {"healthProbe": {"id": f"{LB}/probes/http"}},
                "extensionProfile": {"extensions": [{"name": "script", "properties": {
                    "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                    "typeHandlerVersion": "2.1",
                    "settings": {"commandToExecute": "echo hi"},
                    "protectedSettings": {"secret": PROTECTED}}}]},
            },
        },
    }


def wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.2)
    return found


def scrape(server: Server, token: str = METRICS_TOKEN) -> dict[str, list[tuple[dict[str, str],
                                                                              float]]]:
    r = httpx.get(f"{server.endpoint}/metrics", verify=trusting(server.ca), timeout=10,
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    samples: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(v for _, v in samples[name])


def test_a_served_rollout_is_logged_as_json_and_counted_in_metrics(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")
    data = tmp_path / "data"
    data.mkdir()
    with running_server(data, extra=("--log-format", "json", "--metrics-token-file",
                                     str(token_file))) as server, server.http() as http:
        assert http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"}).status_code < 300
        assert http.put(f"{LB}{NV}", json={"location": "westus", "properties": {"probes": [
            {"name": "http", "properties": {"protocol": "Http", "port": 80,
                                            "requestPath": "/health"}}]}}).status_code < 300
        created = http.put(f"{SET}{V}", json=scale_set())
        assert created.status_code == 201, created.text
        wait("the scale set", lambda: http.get(created.headers["Azure-AsyncOperation"])
             .json()["status"] == "Succeeded")
        time.sleep(1)  # every instance healthy before the new version appears
        http.put(f"{IMAGES}/1.1.0{V}", json={"location": "westus"})  # the platform rolls it

        def completed() -> Any:
            r = http.get(f"{SET}/osUpgradeHistory{V}").json()["value"]
            return r if r and r[0]["properties"]["runningStatus"]["code"] == "Completed" \
                else None
        history = wait("the automatic run", completed)
        assert history[0]["properties"]["startedBy"] == "Platform"

        # Refused requests, their secrets in the query string and the form.
        assert http.get(f"{SET}/absent{V}&code={QUERY_SECRET}").status_code == 404
        assert http.post(f"{SET}/osRollingUpgrade{V}",
                         headers={"Authorization": "Bearer sst_0badc0de_unknown"}
                         ).status_code == 401
        assert http.post(f"/{SUB}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "nobody",
            "client_secret": FORM_SECRET, "scope": "https://management.azure.com/.default"},
            headers={"Authorization": ""}).status_code >= 400

        # /metrics: who may read it.
        plain = httpx.get(f"{server.endpoint}/metrics", verify=trusting(server.ca))
        assert plain.status_code == 401 and plain.json()["error"]["code"]
        as_scraper = httpx.get(f"{server.endpoint}{SET}{V}", verify=trusting(server.ca),
                               headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert as_scraper.status_code == 401
        assert scrape(server, TOKEN)  # a contributor (any reader) may read it too

        # /metrics agrees with the API.
        samples = scrape(server)
        vms = http.get(f"{SET}/virtualMachines{V}&$expand=instanceView").json()["value"]
        shown = collections.Counter(
            (vm["properties"]["instanceView"]["vmHealth"]["status"]["code"].split("/")[1],
             vm["properties"]["storageProfile"]["imageReference"]["exactVersion"])
            for vm in vms)
        counted = {(labels["health"].lower(), labels["image_version"]): v
                   for labels, v in samples["scaleset_instances"]
                   if labels["scale_set"] == "web"}
        assert counted == shown == {("healthy", "1.1.0"): 4}
        runs = {(labels["kind"], labels["started_by"], labels["status"]): v
                for labels, v in samples["scaleset_rolling_upgrade_runs"]}
        assert runs == {("OSImage", "Platform", "Completed"): 1}
        assert total(samples, "scaleset_trigger_delay_seconds_count") == 1
        assert total(samples, "scaleset_batch_duration_seconds_count") == 2
        upgraded = {labels["outcome"]: v for labels, v in
                    samples["scaleset_instance_upgrade_duration_seconds_count"]}
        assert upgraded == {"upgraded": 4}
        assert total(samples, "scaleset_reconcile_pass_duration_seconds_count") > 0
        assert total(samples, "scaleset_reconcile_lag_seconds_count") > 0
        before = scrape(server)["scaleset_api_requests_total"]
        http.get(f"{SET}{V}")
        after = scrape(server)["scaleset_api_requests_total"]
        key = {"method": "GET", "status": "200", "route": "/subscriptions/{subscription}/"
               "resourceGroups/{resource_group}/providers/Microsoft.Compute/"
               "virtualMachineScaleSets/{name}"}
        assert sum(v for labels, v in after if labels == key) == \
            sum(v for labels, v in before if labels == key) + 1

    log = (data / "serve.log").read_text()
    lines = []
    for text in log.splitlines():
        if text.startswith(STARTUP_LINES):
            continue
        lines.append(json.loads(text))  # every log line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)

    outcomes = [x for x in lines if x["logger"] == "scaleset.events"]
    kinds = [x["event"] for x in outcomes]
    for kind in ("RunStarted", "BatchStarted", "BatchCompleted", "InstanceUpgraded",
                 "RunFinished"):
        assert kind in kinds, kinds
    assert kinds.count("InstanceUpgraded") == 4 and kinds.count("BatchStarted") == 2
    [finished] = [x for x in outcomes if x["event"] == "RunFinished"]
    assert (finished["status"], finished["level"], finished["started_by"]) == (
        "Completed", "INFO", "Platform")
    refused = [x for x in lines if x["logger"] == "scaleset.api.access"]
    assert {(x["status"], x["level"]) for x in refused} >= {(404, "INFO"), (401, "INFO")}
    assert all(x["level"] == "INFO" for x in refused if 400 <= x["status"] < 500)
    [signin] = [x for x in refused if x["route"] == "/{tenant}/oauth2/v2.0/token"]
    assert signin["status"] == 400 and signin["error_code"]  # OAuth's own error code

    for secret in (TOKEN, METRICS_TOKEN, PASSWORD, CUSTOM_DATA, CUSTOM_DATA_TEXT, PROTECTED,
                   QUERY_SECRET, FORM_SECRET, "sst_0badc0de_unknown"):
        assert secret not in log, secret


def test_a_process_driver_rollout_in_metrics_probes_included(tmp_path: Path) -> None:
    """Real instances behind a load-balancer probe: the prober's attempts are counted, and
    the gauges say what the API says once the automatic run to 1.1.0 is done."""
    from tests.e2e import test_process_serve as process

    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN)
    data = tmp_path / "data"
    data.mkdir()
    try:
        with running_server(data, driver="process", extra=(
                "--insecure-http", "--metrics-token-file", str(token_file))) as server, \
                process.client(server) as http:
            process.create_web(http)
            process.call(http, "PUT", f"{process.VERSIONS}/1.1.0", {
                "location": "westus",
                "properties": {"source": {"path": str(process.WEBAPP / "1.1.0")}}})

            def completed() -> Any:
                items = process.call(http, "GET", f"{process.SET}/osUpgradeHistory")["value"]
                done = items and items[0]["properties"]["runningStatus"]["code"] == "Completed"
                return process.all_healthy(http, 3) if done else None
            process.wait_for(completed, timeout=90, what="the automatic run to 1.1.0")

            r = httpx.get(f"{server.endpoint}/metrics", trust_env=False,
                          headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert r.status_code == 200
            samples: dict[str, list[tuple[dict[str, str], float]]] = \
                collections.defaultdict(list)
            for family in text_string_to_metric_families(r.text):
                for s in family.samples:
                    samples[s.name].append((s.labels, s.value))
            probes = {(labels["source"], labels["protocol"]): v
                      for labels, v in samples["scaleset_probe_duration_seconds_count"]}
            assert probes.get(("loadBalancer", "http"), 0) >= 6  # 3 instances, 2 images
            shown = collections.Counter(
                (vm["properties"]["instanceView"]["vmHealth"]["status"]["code"].split("/")[1],
                 vm["properties"]["storageProfile"]["imageReference"]["exactVersion"])
                for vm in process.instances(http))
            counted = {(labels["health"].lower(), labels["image_version"]): v
                       for labels, v in samples["scaleset_instances"]}
            assert counted == shown == {("healthy", "1.1.0"): 3}
            runs = {(labels["kind"], labels["started_by"], labels["status"]): v
                    for labels, v in samples["scaleset_rolling_upgrade_runs"]}
            assert runs.get(("OSImage", "Platform", "Completed")) == 1
            assert total(samples, "scaleset_trigger_delay_seconds_count") == 1
            assert total(samples, "scaleset_instance_upgrade_duration_seconds_count") == 3
    finally:
        for pids in process.instance_processes(data).values():  # no orphans, whatever failed
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
