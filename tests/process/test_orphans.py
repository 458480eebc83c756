"""Instances of a scale set the store no longer knows are removed, processes and disks."""

from __future__ import annotations

import json
from pathlib import Path

from scaleset.drivers.process import processes
from tests.process.fleet import Fleet, wait_for


def test_instances_of_a_scale_set_missing_from_the_store_are_removed(fleet: Fleet) -> None:
    fleet.publish("1.0.0")
    fleet.create_load_balancer()
    fleet.create_scale_set("web", capacity=2)
    wait_for(lambda: fleet.all_healthy("web", 2), what="2 healthy instances")
    (sid,) = fleet.driver.scale_set_ids()
    # Whole keys (with the incarnation): other control planes on this machine (tests
    # running beside this one) may have instances of a scale set with the same id.
    keys = [f"{d.parent.name}/{d.name}/{json.loads((d / 'state.json').read_text())['incarnation']}"
            for d in (fleet.data_dir / "instances").glob("*/*")]
    assert len(keys) == 2
    with fleet.store.transaction() as tx:  # the record is lost (say, another database)
        tx.delete_instances(sid, ["0", "1"])
        tx.delete_scale_set(sid)

    wait_for(lambda: not fleet.driver.scale_set_ids(), timeout=10,
             what="the driver to drop the orphaned scale set")

    def all_gone() -> bool:
        on_disk = list((fleet.data_dir / "instances").glob("*/*"))
        running = [pid for key in keys for pid in _marked_with_prefix(key)]
        return not on_disk and not running
    wait_for(all_gone, timeout=15, what="the orphans' processes and disks to go")


def _marked_with_prefix(prefix: str) -> list[int]:
    """Pids of processes whose instance marker starts with ``prefix``."""
    needle = f"{processes.KEY_VARIABLE}={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(needle) for v in environ):
            found.append(int(entry.name))
    return found
