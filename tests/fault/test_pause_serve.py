"""SIGSTOP of ``serve`` mid-batch for longer than the health timeout, then SIGCONT.

The instances are processes of their own: while the control plane is frozen the
instance being upgraded boots and answers its probe. A user expects the pause
alone to change nothing: once resumed, the run completes on the new version with
no instance failed or rolled back (the health timeout measures the instance, not
the time the control plane was not running), and the API answers at once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.fault.conftest import hard_timeout, processes_under
from tests.fault.rollout import (
    SET, build_image, call, client, create_fleet, data_file, instances, latest, on_version,
    publish, put_data_file, serve, wait_for,
)

CAPACITY = 3
HEALTH_TIMEOUT = 4.0
PAUSE = HEALTH_TIMEOUT + 4.0


@hard_timeout(120)
def test_a_paused_serve_resumes_the_run_without_rolling_back(tmp_path: Path,
                                                             data_dir: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with serve(data_dir, images, health_timeout=str(HEALTH_TIMEOUT)) as server, \
            client(server) as http:
        create_fleet(http, build_image(images, "1.0.0"), CAPACITY)
        addresses = wait_for(lambda: on_version(http, "1.0.0", CAPACITY), timeout=60,
                             what="3 healthy instances on 1.0.0")
        for instance_id, ip in addresses.items():
            put_data_file(ip, "kept", f"instance {instance_id}")
        publish(http, build_image(images, "1.1.0"))
        wait_for(lambda: any(i["properties"]["provisioningState"] == "Updating"
                             for i in instances(http)), timeout=30, what="a batch in progress")

        server.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(PAUSE)
        finally:
            server.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        assert http.get(f"{SET}", params={"api-version": "2026-04-01"}).status_code == 200
        answered = time.monotonic() - resumed

        addresses = wait_for(lambda: on_version(http, "1.1.0", CAPACITY), timeout=60,
                             what="every instance healthy on 1.1.0")
        run = wait_for(lambda: (run := latest(http)) and run["runningStatus"]["code"]
                       != "RollingForward" and run, timeout=60, what="the run to end")
        history = call(http, "GET", f"{SET}/osUpgradeHistory")["value"]
        kept = {i: data_file(ip, "kept") for i, ip in addresses.items()}
    left = processes_under(data_dir)
    rolled_back = (run.get("rollbackInfo") or {}).get("successfullyRolledbackInstanceCount", 0)
    print(f"\nfault suite, SIGSTOP: serve paused {PAUSE:.0f} s (health timeout "
          f"{HEALTH_TIMEOUT:.0f} s) mid-batch; first answer {answered:.2f} s after SIGCONT; "
          f"run {run['runningStatus']['code']}, failed {run['progress']['failedInstanceCount']}, "
          f"rolled back {rolled_back}")
    assert run["runningStatus"]["code"] == "Completed", run
    assert run["progress"]["failedInstanceCount"] == 0, run
    assert rolled_back == 0
    assert history[0]["properties"]["targetImageReference"]["version"] == "1.1.0"
    assert kept == {i: f"instance {i}" for i in kept}
    assert not left, f"processes outlived a clean stop of serve: {left}"
