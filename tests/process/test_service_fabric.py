"""A Service Fabric node type of real instances: its extension joins each node, and an
OS upgrade goes update domain by update domain without any probe."""

from __future__ import annotations

import json

from tests.process.fleet import VMSS, Fleet, wait_for

ENDPOINT = "https://westus.servicefabric.azure.com/runtime/clusters/0f6a1c2e"
SERVICE_FABRIC = {"name": "sf", "properties": {
    "publisher": "Microsoft.Azure.ServiceFabric", "type": "ServiceFabricLinuxNode",
    "typeHandlerVersion": "1.1", "autoUpgradeMinorVersion": True,
    "settings": {"clusterEndpoint": ENDPOINT, "nodeTypeRef": "nt1", "durabilityLevel": "Silver",
                 "enableParallelJobs": True}}}


def test_nodes_join_the_cluster_and_a_manual_upgrade_goes_domain_by_domain(
        fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_scale_set("sf", capacity=3, probe=False, automatic=False,
                           extensions=[SERVICE_FABRIC])
    wait_for(lambda: fleet.all_healthy("sf", 3), what="3 healthy Service Fabric nodes")
    for item in fleet.instances("sf"):
        status = fleet.extensions(item)["sf"]
        assert status["code"] == "ProvisioningState/succeeded", status
        assert "joined cluster " + ENDPOINT in status["message"]
        node = json.loads((fleet.os_disk_path("sf", item["instanceId"]) / ".scaleset" /
                           "servicefabric-node.json").read_text())
        assert node == {"clusterEndpoint": ENDPOINT, "nodeTypeRef": "nt1",
                        "durabilityLevel": "Silver"}

    fleet.publish("1.1.0")
    fleet.call("POST", f"{VMSS}/sf/osRollingUpgrade")
    wait_for(lambda: fleet.latest_status("sf") == "Completed", what="the manual run")

    # Without a probe nobody waits for the application itself: it answers soon after.
    wait_for(lambda: all(fleet.answers(fleet.address(i)) for i in fleet.instances("sf")),
             what="the application on every node")
    assert all("webapp 1.1.0" in fleet.page(i) for i in fleet.instances("sf"))
    with fleet.store.transaction() as tx:
        sid = fleet.scale_set_id("sf")
        run = tx.get_run(tx.past_runs(sid)[0].run_id)  # newest first; with its batches
        domain = {iid: r.update_domain for iid, r in tx.instances(sid).items()}
    batches = [list(b.instance_ids) for b in run.batches]
    assert [sorted({domain[i] for i in b}) for b in batches] == [[0], [1], [2]], batches
