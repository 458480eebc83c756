"""Instances are isolated when the control plane is root: a user each, their own disks only.

The custom data script of every instance tries what an attacker on one instance would:
read the database, list the data directory and the image store, write into another
instance's data disk, read another instance's OS disk. It records on its own data disk
what it could do; the test reads that back and checks the uids its processes run as.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleset.drivers.process.driver import UID_BASE
from scaleset.drivers.process.records import scale_set_key
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from tests.process.fleet import Fleet, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="instances get users of their own "
                                "only when the control plane runs as root (not root here)")

ATTEMPTS = """#!/bin/sh
data="${{SCALESET_DATA_DISKS%%:*}}"
out="$data/attempts.txt"
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "$1 allowed" >> "$out"; \\
         else echo "$1 refused" >> "$out"; fi; }}
try read-database "cat {data_dir}/scaleset.db"
try list-data-dir "ls {data_dir}"
try list-images "ls {data_dir}/images"
try list-instances "ls {data_dir}/instances"
try read-state "cat $PWD/../../state.json"
try write-other-data-disk "echo x > {set_dir}/$OTHER/disks/lun0/owned.txt"
try list-other-os-disks "ls {set_dir}/$OTHER/os"
try read-own-custom-data "cat $SCALESET_CUSTOM_DATA"
try write-own-data-disk "echo mine > $data/mine.txt"
id -u > "$data/uid.txt"
"""


@pytest.fixture
def isolated_fleet(tmp_path: Path) -> Iterator[Fleet]:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    engine = make_engine(f"sqlite:///{data_dir}/scaleset.db")
    migrate(engine)
    store = Store(engine)
    # serve keeps the files of its data directory 0600 (issue 12 item 3); so does this test.
    os.chmod(data_dir / "scaleset.db", 0o600)
    fleet = Fleet(data_dir, store)
    yield fleet
    fleet.close()
    store.close()


def _attempts(directory: Path) -> dict[str, str]:
    text = (directory / "disks" / "lun0" / "attempts.txt").read_text()
    return dict(line.rsplit(" ", 1) for line in text.splitlines())


def test_an_instance_reaches_its_own_disks_only(isolated_fleet: Fleet) -> None:
    fleet = isolated_fleet
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    set_dir = fleet.data_dir / "instances" / scale_set_key(fleet.scale_set_id("web"))
    script = ATTEMPTS.format(data_dir=fleet.data_dir, set_dir=set_dir)
    # Each instance attacks the other: instance 0 goes for 1, 1 for 0 ($OTHER below).
    script = script.replace('data="', 'OTHER=$((1 - SCALESET_INSTANCE_ID))\ndata="', 1)
    fleet.create_scale_set("web", capacity=2, custom_data=script)
    wait_for(lambda: fleet.all_healthy("web", 2), timeout=30, what="two healthy instances")

    sid = fleet.scale_set_id("web")
    uids = []
    for instance_id in ("0", "1"):
        directory = fleet.driver.instance_directory(sid, instance_id)
        assert directory is not None
        attempts = _attempts(directory)
        assert attempts == {
            "read-database": "refused", "list-data-dir": "refused", "list-images": "refused",
            "list-instances": "refused", "read-state": "refused",
            "write-other-data-disk": "refused", "list-other-os-disks": "refused",
            "read-own-custom-data": "allowed", "write-own-data-disk": "allowed"}, attempts
        assert not list(directory.parent.glob("*/disks/lun0/owned.txt"))
        uid = int((directory / "disks" / "lun0" / "uid.txt").read_text())
        pid = fleet.pid("web", instance_id)
        assert pid is not None
        assert Path(f"/proc/{pid}").stat().st_uid == uid  # the application too, not only data
        uids.append(uid)

        # Its disks are its own and private; what the control plane keeps is not.
        os_disk = fleet.os_disk_path("web", instance_id)
        for own in (os_disk, directory / "disks" / "lun0"):
            st = own.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o700), own
        custom = os_disk / ".scaleset" / "customdata"
        assert (custom.stat().st_uid, custom.stat().st_mode & 0o777) == (uid, 0o600)
        for kept in (directory / "state.json", directory / "console.log"):
            assert (kept.stat().st_uid, kept.stat().st_mode & 0o777) == (0, 0o600), kept
        state = (directory / "state.json").read_text()
        assert "attempts.txt" not in state  # custom data is not kept in state.json
    assert all(u >= UID_BASE for u in uids) and len(set(uids)) == 2, uids

    # Knowing the exact path does not help either: instance 0's user reads nothing of 1's.
    other_disk = fleet.os_disk_path("web", "1")
    for command in (["cat", str(other_disk / "image.json")], ["ls", str(other_disk)],
                    ["cat", str(other_disk / ".scaleset" / "customdata")]):
        done = subprocess.run(command, user=uids[0], group=uids[0], extra_groups=[],
                              capture_output=True, check=False)
        assert done.returncode != 0 and b"Permission denied" in done.stderr, command


def test_state_json_holds_no_secret(isolated_fleet: Fleet) -> None:
    fleet = isolated_fleet
    fleet.publish("1.0.0")
    secret = "s3cr3t-protected-value"
    fleet.create_scale_set("web", capacity=1, probe=False, mode="Manual", automatic=False,
                           custom_data="#!/bin/sh\necho custom-data-secret > /dev/null\n",
                           extensions=[{"name": "run", "properties": {
                               "publisher": "Microsoft.Azure.Extensions",
                               "type": "CustomScript", "typeHandlerVersion": "2.1",
                               "settings": {},
                               "protectedSettings": {
                                   "commandToExecute": f"echo {secret} > used.txt"}}}])
    sid = fleet.scale_set_id("web")

    def provisioned() -> bool:
        items = fleet.instances("web")  # empty until the reconciler made the instance
        return bool(items) and fleet.extensions(items[0]).get("run", {}).get(
            "code") == "ProvisioningState/succeeded"
    wait_for(provisioned, timeout=30, what="the extension to succeed")
    directory = fleet.driver.instance_directory(sid, "0")
    assert directory is not None
    state = (directory / "state.json").read_text()
    assert secret not in state and "custom-data-secret" not in state
    assert "Y3VzdG9t" not in state  # nor its base64 ("custom…")
    assert not list(directory.glob("inputs-*.json"))  # provisioned: the inputs are gone
    assert (fleet.os_disk_path("web", "0") / "used.txt").read_text().strip() == secret
