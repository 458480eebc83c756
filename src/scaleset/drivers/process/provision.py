"""First boot of a new OS disk: custom data, then the extensions in sequence.

Runs once per OS disk (the disk records ``provisioned``); the statuses it
leaves on the disk record are what the instance view shows, including
``Creating`` for the extension in progress.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import IO

from scaleset.drivers.process import disks, extensions, processes
from scaleset.drivers.process.instance import LiveInstance
from scaleset.drivers.process.records import status_dict
from scaleset.model.instance import ExtensionStatus


def provision(live: LiveInstance, custom_data: bytes, env: dict[str, str],
              stopping: threading.Event) -> list[ExtensionStatus] | None:
    """Run custom data (when it is a script) and every extension; ``None`` if interrupted.

    The disk's extension statuses are updated as it goes; on an interruption
    they are cleared, so the next start provisions the disk again rather than
    remember a command killed by the shutdown as a failure.
    """
    disk = live.state.os_disk
    path = live.disk_path(disk)
    statuses: list[ExtensionStatus] = []
    with live.console_file() as console:
        if custom_data.startswith(b"#!"):
            _run_custom_data(live, path, env, console)
        ctx = extensions.Context(os_disk=path, env=env, console=console,
                                 spawn_group=live.groups.add)
        for spec in disk.extension_specs():
            if stopping.is_set():
                break
            disk.extension_statuses = [status_dict(s) for s in statuses] + [
                status_dict(ExtensionStatus(spec.name, f"{spec.publisher}.{spec.type}",
                                            "Creating", None, spec.type_handler_version))]
            statuses.append(extensions.run(spec, ctx))
    if stopping.is_set():
        disk.extension_statuses = []
        return None
    disk.extension_statuses = [status_dict(s) for s in statuses]
    disk.provisioned = True
    live.save()
    return statuses


def _run_custom_data(live: LiveInstance, os_disk: Path, env: dict[str, str],
                     console: IO[bytes]) -> None:
    script = disks.custom_data_path(os_disk)
    script.chmod(0o755)
    console.write(b"[scaleset] running custom data\n")
    console.flush()
    process = processes.spawn([str(script)], cwd=os_disk, env=env, log=console)
    live.groups.add(process.pid)
    try:
        code = process.wait(timeout=extensions.DEFAULT_BUDGET)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    # Like cloud-init, a failing user script is reported, not fatal to provisioning.
    console.write(f"[scaleset] custom data exited with status {code}\n".encode())
    console.flush()
