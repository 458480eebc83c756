"""A CustomScript whose fileUris carry an expired shared access signature.

The scale set runs fine until its model holds a SAS whose ``se=`` has passed
(here the model is given one that already has); the next OS image upgrade
provisions a new OS disk, the download is refused the way a storage account
refuses it, and the first batch fails. A fresh SAS in the model plus a user
action (a new upgrade run, or a manual upgrade of the failed instances)
recovers them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.process.fleet import VMSS, Fleet, wait_for

SCRIPT = 'echo "setup ran" >> "${SCALESET_DATA_DISKS%%:*}/setup.txt"\n'


def _sas(hours: float) -> str:
    expiry = (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)
    return f"se={expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}&sp=r&sig=c2lnbmF0dXJl"


def _setup_extension(uri: str) -> list[dict[str, Any]]:
    return [{"name": "setup", "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1",
        "settings": {"fileUris": [uri]},
        "protectedSettings": {"commandToExecute": "sh setup.sh"}}}]


def _use_sas(fleet: Fleet, base_uri: str, hours: float) -> None:
    fleet.call("PATCH", f"{VMSS}/web", {"properties": {"virtualMachineProfile": {
        "extensionProfile": {"extensions": _setup_extension(f"{base_uri}?{_sas(hours)}")}}}})


def _setup_status(instance: dict[str, Any]) -> dict[str, Any]:
    return Fleet.extensions(instance)["setup"]


@pytest.fixture
def script_server(tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:<port>/setup.sh``: a storage account that ignores the signature."""
    body = SCRIPT.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.split("?")[0] == "/setup.sh"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/setup.sh"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_expired_sas_faults_the_upgrade_and_the_batch_is_rolled_back(
        fleet: Fleet, tmp_path: Path) -> None:
    script = tmp_path / "setup.sh"
    script.write_text(SCRIPT)
    uri = script.as_uri()
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2, mode="Manual",
                           extensions=_setup_extension(f"{uri}?{_sas(1)}"))
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="2 healthy instances")
    assert all(_setup_status(i)["code"] == "ProvisioningState/succeeded"
               for i in fleet.instances("web"))

    _use_sas(fleet, uri, hours=-1)  # the SAS in the model has expired
    fleet.publish("1.1.0")
    wait_for(lambda: fleet.latest_status("web") == "Faulted", timeout=20,
             what="the run to 1.1.0 to fault")
    # What the run says: the batch broke the upgraded-instance limit (it does not carry the
    # instance's own reason; the instance's serial console log does, see below).
    latest = fleet.latest("web")["properties"]
    assert latest["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    assert latest["progress"]["failedInstanceCount"] == 1  # the first batch: one instance
    # The error's details say why the instance failed, without the signature.
    (detail,) = latest["error"]["details"]
    assert detail["target"].startswith("instance ")
    assert "AuthenticationFailed" in detail["message"] and "sig=" not in detail["message"]
    assert latest["progress"]["successfulInstanceCount"] == 0
    # Rolled back: every instance is on its old OS disk again, healthy, 1.0.0.
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="rolled back and healthy")
    items = fleet.instances("web")
    assert {fleet.exact_version(i) for i in items} == {"1.0.0"}
    # The restored OS disk is the one provisioned at creation: its extension status is back.
    assert all(_setup_status(i)["code"] == "ProvisioningState/succeeded" for i in items)
    # Why the batch failed is in the failed instance's serial console log.
    consoles = {i["instanceId"]: fleet.console("web", i["instanceId"]) for i in items}
    failed = [iid for iid, text in consoles.items() if "AuthenticationFailed" in text]
    assert len(failed) == 1, "exactly the first batch (one instance) tried and failed"
    assert "shared access signature expired" in consoles[failed[0]]
    assert "sig=" not in consoles[failed[0]]  # the signature never reaches a log
    assert "rolled back to OS disk" in consoles[failed[0]]
    history = fleet.call("GET", f"{VMSS}/web/osUpgradeHistory")["value"]
    assert history[0]["properties"]["rollbackInfo"] == {
        "successfullyRolledbackInstanceCount": 1, "failedRolledbackInstanceCount": 0}

    # A fresh SAS and a new run: every instance reaches 1.1.0 with the setup done.
    _use_sas(fleet, uri, hours=1)
    fleet.call("POST", f"{VMSS}/web/osRollingUpgrade")
    wait_for(lambda: fleet.latest_status("web") == "Completed", timeout=20,
             what="the retried run to complete")
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=10, what="healthy on 1.1.0")
    for i in fleet.instances("web"):
        assert fleet.exact_version(i) == "1.1.0"
        assert _setup_status(i)["code"] == "ProvisioningState/succeeded"
        assert "webapp 1.1.0" in fleet.page(i)


def test_instances_failed_by_an_expired_sas_recover_by_manual_upgrade(
        fleet: Fleet, script_server: str) -> None:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2, mode="Manual", disable_rollback=True,
                           extensions=_setup_extension(f"{script_server}?{_sas(1)}"))
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="2 healthy instances")

    _use_sas(fleet, script_server, hours=-1)
    fleet.publish("1.1.0")
    wait_for(lambda: fleet.latest_status("web") == "Faulted", timeout=20,
             what="the run to 1.1.0 to fault")
    latest = fleet.latest("web")["properties"]
    assert latest["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    assert latest["progress"]["failedInstanceCount"] == 1
    # No rollback: the first batch stays on the new OS disk, its extension failed.
    items = fleet.instances("web")
    failed = [i for i in items if _setup_status(i)["code"] == "ProvisioningState/failed"]
    assert len(failed) == 1, [_setup_status(i) for i in items]
    assert fleet.exact_version(failed[0]) == "1.1.0"
    status = _setup_status(failed[0])
    assert "AuthenticationFailed" in status["message"] and "expired" in status["message"]
    assert "sig=" not in status["message"]  # the signature is never shown
    assert fleet.health(failed[0]) == "HealthState/unhealthy"
    failed_ids = [i["instanceId"] for i in failed]

    _use_sas(fleet, script_server, hours=1)
    fleet.call("POST", f"{VMSS}/web/manualupgrade", {"instanceIds": failed_ids})

    def recovered() -> bool:
        instance = fleet.instance("web", failed_ids[0])
        return _setup_status(instance)["code"] == "ProvisioningState/succeeded" \
            and fleet.health(instance) == "HealthState/healthy"

    wait_for(recovered, timeout=20, what="the failed instance to recover")
    wait_for(lambda: fleet.latest_status("web") == "Completed", timeout=10,
             what="the manual upgrade to complete")
    instance = fleet.instance("web", failed_ids[0])
    # The manual upgrade applies the scale set's model, whose image is still 1.0.0: the
    # run to 1.1.0 faulted, so the model never moved on.
    assert fleet.exact_version(instance) == "1.0.0"
    assert "webapp 1.0.0" in fleet.page(instance)
    # Created once, provisioned again by the manual upgrade (the failed attempt never ran it).
    assert fleet.get_data(fleet.address(instance), "setup.txt") == b"setup ran\nsetup ran\n"
