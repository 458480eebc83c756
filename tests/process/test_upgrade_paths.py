"""Rolling upgrades of real instances: forward, rolled back, and a failed manual run."""

from __future__ import annotations

from tests.process.fleet import VMSS, Fleet, wait_for


def _versions(fleet: Fleet, name: str) -> list[str]:
    return sorted(fleet.page(i) for i in fleet.instances(name))


def test_publishing_a_version_rolls_every_instance_onto_it(fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=4)
    wait_for(lambda: fleet.all_healthy("web", 4), what="4 healthy instances on 1.0.0")
    addresses = {fleet.address(i) for i in fleet.instances("web")}
    assert len(addresses) == 4 and all(a.startswith("127.") for a in addresses)
    assert all("webapp 1.0.0" in fleet.page(i) for i in fleet.instances("web"))

    fleet.publish("1.1.0")
    wait_for(lambda: fleet.latest_status("web") == "Completed", what="the run to complete")
    items = fleet.instances("web")
    assert all("webapp 1.1.0" in fleet.page(i) for i in items)
    assert {fleet.address(i) for i in items} == addresses  # an upgrade keeps the address
    assert all(i["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.1.0"
               for i in items)


def test_a_broken_version_is_rolled_back_and_the_run_faults(fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=4)
    wait_for(lambda: fleet.all_healthy("web", 4), what="4 healthy instances")
    fleet.publish("1.2.0")
    wait_for(lambda: fleet.latest_status("web") == "Faulted", what="the run to fault")
    latest = fleet.latest("web")
    assert latest["properties"]["error"]["code"]
    wait_for(lambda: fleet.all_healthy("web", 4), what="rolled-back instances healthy")
    assert all("webapp 1.1.0" in fleet.page(i) for i in fleet.instances("web"))


def test_a_manual_upgrade_that_fails_stays_failed(fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2, automatic=False)
    wait_for(lambda: fleet.all_healthy("web", 2), what="2 healthy instances")
    fleet.publish("1.2.0")
    fleet.call("POST", f"{VMSS}/web/osRollingUpgrade")
    wait_for(lambda: fleet.latest_status("web") == "Faulted", what="the manual run to fault")
    # No automatic rollback for a manual run: the upgraded instance stays on 1.2.0, unhealthy.
    items = fleet.instances("web")
    on_new = [i for i in items
              if i["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.2.0"]
    assert on_new, "the first batch should have been left on the failing version"
    assert all(fleet.health(i) == "HealthState/unhealthy" for i in on_new)
    assert all("webapp 1.2.0" in fleet.page(i) for i in on_new)


HEALTH_EXTENSION = {"name": "health", "properties": {
    "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
    "typeHandlerVersion": "1.0", "settings": {
        "protocol": "http", "port": 8080, "requestPath": "/health", "intervalInSeconds": 1,
        "numberOfProbes": 1, "gracePeriod": 30}}}


def test_the_application_health_extension_gates_the_rollout_without_a_probe(
        fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_scale_set("web", capacity=2, probe=False, extensions=[HEALTH_EXTENSION])
    wait_for(lambda: fleet.all_healthy("web", 2), what="2 instances healthy by the extension")
    item = fleet.instances("web")[0]
    (status,) = item["properties"]["instanceView"]["extensions"]
    assert status["name"] == "health"
    assert status["statuses"][0]["code"] == "ProvisioningState/succeeded"
    fleet.publish("1.2.0")  # rich health says Unhealthy: rolled back like with a probe
    wait_for(lambda: fleet.latest_status("web") == "Faulted", what="the run to fault")
    wait_for(lambda: fleet.all_healthy("web", 2), what="rolled-back instances healthy")
    assert all("webapp 1.1.0" in fleet.page(i) for i in fleet.instances("web"))
