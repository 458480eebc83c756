"""20 kill -9 of ``serve`` at seeded-random moments of process-driver rollouts.

A fleet of 3 real instances upgrades one instance per batch to a new image
version, again and again, while ``serve`` is SIGKILLed at random moments and
restarted on the same data directory. What a user would check afterwards:
every run completed (none faulted, nothing rolled back), each instance got
each version's OS disk once (the boot markers name the disks), custom data ran
once per OS disk, the files written to the data disks before the first kill
are all there, and once ``serve`` is stopped cleanly nothing under its data
directory is still running.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fault.conftest import hard_timeout, processes_under
from tests.fault.rollout import (
    SET, build_image, call, client, create_fleet, data_file, disks_per_version, fleet_state,
    latest, on_version, publish, put_data_file, serve, wait_for,
)

SEED = 12
KILLS = 20
CAPACITY = 3
RUN_TIMEOUT = 90.0
"""Seconds a run may take to end once ``serve`` is left alone."""


def _settled(http: httpx.Client, version: str) -> dict[str, Any] | None:
    """The latest run once it is over: Completed with every instance on ``version``, or
    Faulted/Cancelled (then at once, so the test fails with the run's error, not a timeout).
    """
    run = latest(http)
    code = run["runningStatus"]["code"] if run else None
    if code in ("Faulted", "Cancelled") or (
            code == "Completed" and on_version(http, version, CAPACITY)):
        return run
    return None


def _check_run(http: httpx.Client, version: str, kept: dict[str, str]) -> dict[str, str]:
    """The run to ``version`` ended Completed with nothing failed or rolled back."""
    run = wait_for(lambda: _settled(http, version), timeout=RUN_TIMEOUT,
                   what=f"the run to {version} to end", state=lambda: fleet_state(http))
    assert run["runningStatus"]["code"] == "Completed", fleet_state(http)
    assert run["progress"]["failedInstanceCount"] == 0, run
    assert (run.get("rollbackInfo") or {}).get("successfullyRolledbackInstanceCount", 0) == 0
    addresses = on_version(http, version, CAPACITY)
    assert addresses is not None, fleet_state(http)
    for instance_id, ip in addresses.items():
        assert data_file(ip, "kept") == kept[instance_id], \
            f"instance {instance_id} lost its data-disk file after the run to {version}"
    return addresses


@hard_timeout(240)
def test_twenty_kills_of_serve_mid_rollout_lose_nothing_and_upgrade_once(
        tmp_path: Path, data_dir: Path) -> None:
    rng = random.Random(SEED)
    images = tmp_path / "images"
    images.mkdir()
    versions = [build_image(images, "1.0.0")]
    kept: dict[str, str] = {}
    kills = 0
    mid_run = 0  # kills that landed while a run rolled forward, not between runs
    kill_moments: list[float] = []
    started = time.monotonic()

    with serve(data_dir, images) as server, client(server) as http:
        create_fleet(http, versions[0], CAPACITY)
        addresses = wait_for(lambda: on_version(http, "1.0.0", CAPACITY), timeout=60,
                             what="3 healthy instances on 1.0.0")
        for instance_id, ip in addresses.items():
            kept[instance_id] = f"written before the first kill to instance {instance_id}"
            put_data_file(ip, "kept", kept[instance_id])
        versions.append(build_image(images, "1.1.0"))
        publish(http, versions[-1])

    while kills < KILLS:
        with serve(data_dir, images) as server, client(server) as http:
            target = versions[-1].name
            if _settled(http, target):
                # This run is over: it must have completed; then start the next one.
                _check_run(http, target, kept)
                versions.append(build_image(images, f"1.{len(versions)}.0"))
                publish(http, versions[-1])
            moment = rng.uniform(0.0, 3.0)
            time.sleep(moment)
            mid_run += (latest(http) or {}).get("runningStatus", {}).get(
                "code") == "RollingForward"
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            kills += 1
            kill_moments.append(round(moment, 2))

    with serve(data_dir, images) as server, client(server) as http:
        addresses = _check_run(http, versions[-1].name, kept)
        history = call(http, "GET", f"{SET}/osUpgradeHistory")["value"]
        assert history[0]["properties"]["targetImageReference"]["version"] == versions[-1].name
        boots = {i: data_file(ip, "boots.log") or "" for i, ip in addresses.items()}
        custom = {i: data_file(ip, "customdata.log") or "" for i, ip in addresses.items()}
    # running_server stopped serve with SIGTERM and waited for it.
    left = processes_under(data_dir)

    upgrades = 0
    twice: list[str] = []
    rerun: list[str] = []
    for instance_id in sorted(addresses):
        disks = disks_per_version(boots[instance_id], "boot")
        per_version: dict[str, set[str]] = {}
        for version, disk in disks:
            per_version.setdefault(version, set()).add(disk)
        for version in (v.name for v in versions):
            count = len(per_version.get(version, set()))
            if count != 1:
                twice.append(f"instance {instance_id}: {count} OS disks of {version}")
        upgrades += sum(len(d) for v, d in per_version.items() if v != "1.0.0")
        ran = disks_per_version(custom[instance_id], "customdata")
        for version, disk in sorted(set(disks) | set(ran)):  # each disk booted or provisioned
            runs = ran.get((version, disk), 0)
            if runs != 1:
                rerun.append(f"instance {instance_id}: custom data ran {runs} times on "
                             f"{disk} ({version})")
    runs_done = len(versions) - 1
    print(f"\nfault suite, kill -9: {kills} kills of serve (seed {SEED}, moments "
          f"{kill_moments} s after serve answered; {mid_run} while a run rolled forward), "
          f"{runs_done} rollouts completed, {upgrades} instance upgrades "
          f"({CAPACITY} instances x {runs_done} versions), "
          f"{len(twice)} double upgrades, {len(rerun)} custom-data re-runs, "
          f"{len(left)} processes left; {time.monotonic() - started:.0f} s")
    assert kills == KILLS
    assert mid_run >= KILLS // 2, "most kills should land inside a run, not between runs"
    assert not twice, twice
    assert upgrades == CAPACITY * runs_done
    assert not rerun, rerun
    assert not left, f"processes outlived a clean stop of serve: {left}"
