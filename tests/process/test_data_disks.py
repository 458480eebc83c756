"""Data disks outlive the OS disk: a reimage and a rolled-back upgrade keep what was written."""

from __future__ import annotations

from tests.process.fleet import VMSS, Fleet, wait_for


def test_a_data_disk_file_survives_a_reimage_and_a_rollback(fleet: Fleet) -> None:
    fleet.publish("1.1.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2)
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="2 healthy instances")
    before = {i["instanceId"]: i for i in fleet.instances("web")}
    addresses = {iid: fleet.address(i) for iid, i in before.items()}
    for iid, instance in before.items():
        fleet.put_data(instance, "x", f"written on instance {iid}".encode())
    assert all(fleet.get_data(addresses[iid], "x") == f"written on instance {iid}".encode()
               for iid in before)

    # A reimage gives instance 0 a fresh OS disk from the image; its data disk stays.
    old_disk = fleet.os_disk(before["0"])
    fleet.call("POST", f"{VMSS}/web/reimage", {"instanceIds": ["0"]})
    wait_for(lambda: fleet.os_disk(fleet.instance("web", "0")) != old_disk, timeout=10,
             what="instance 0 on a new OS disk")
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="healthy after the reimage")
    reimaged = fleet.instance("web", "0")
    assert fleet.address(reimaged) == addresses["0"]  # a reimage keeps the address
    assert not (fleet.os_disk_path("web", "0").parent / old_disk).exists()
    assert fleet.get_data(addresses["0"], "x") == b"written on instance 0"
    assert fleet.get_data(addresses["1"], "x") == b"written on instance 1"

    # 1.2.0 fails its health probe: the first batch is upgraded, then rolled back.
    fleet.publish("1.2.0")
    wait_for(lambda: fleet.latest_status("web") == "Faulted", timeout=20,
             what="the run to 1.2.0 to fault")
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=15, what="healthy after the rollback")
    after = {i["instanceId"]: i for i in fleet.instances("web")}
    assert {iid: fleet.exact_version(i) for iid, i in after.items()} == {"0": "1.1.0",
                                                                         "1": "1.1.0"}
    rolled_back = [iid for iid in after if "rolled back to OS disk" in fleet.console("web", iid)]
    assert rolled_back, "the first batch should have been rolled back onto its kept OS disk"
    for iid, instance in after.items():
        assert fleet.address(instance) == addresses[iid]
        assert "webapp 1.1.0" in fleet.page(instance)
        assert fleet.get_data(addresses[iid], "x") == f"written on instance {iid}".encode()
