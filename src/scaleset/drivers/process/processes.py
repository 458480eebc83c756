"""Starting, finding and stopping an instance's processes.

Every process of an instance carries ``SCALESET_INSTANCE_KEY`` in its
environment and starts in a session of its own. Stopping an instance kills
its process groups, then looks through ``/proc`` for anything that still
carries the key (a daemon a script left behind, say), so nothing of a
stopped instance outlives it. A pid is only trusted together with its start
time, so a pid the kernel reused after a restart is never mistaken for ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

KEY_VARIABLE = "SCALESET_INSTANCE_KEY"
STEP_VARIABLE = "SCALESET_STEP"
"""Carried by a provisioning step's processes (custom data, a CustomScript command)."""
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL, like a guest OS shutdown timeout
_PROC = Path("/proc")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, ``None`` if it is gone or a zombie."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, started: int | None) -> bool:
    """Is ``pid`` still the process that started at ``started``?"""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


@dataclass(frozen=True)
class RunAs:
    """An instance's own user and group (numbers: no ``/etc/passwd`` entry is needed)."""

    uid: int
    gid: int


def spawn(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: IO[bytes],
          run_as: RunAs | None = None, stderr: IO[bytes] | None = None
          ) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (as ``run_as``), output appended to ``log``."""
    if run_as is None:
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=stderr or subprocess.STDOUT,
                                start_new_session=True, close_fds=True, umask=0o077)
    return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=stderr or subprocess.STDOUT,
                            start_new_session=True, close_fds=True, umask=0o077,
                            user=run_as.uid, group=run_as.gid, extra_groups=[])


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def marked(key: str, *, spare_steps: bool = False) -> list[int]:
    """Pids of processes whose environment carries ``SCALESET_INSTANCE_KEY=key``.

    ``spare_steps`` leaves out provisioning steps (they carry ``SCALESET_STEP``).
    """
    return _carrying(f"{KEY_VARIABLE}={key}", spare_steps=spare_steps)


def step_processes(marker: str) -> list[int]:
    """Pids of the processes of one provisioning step (``SCALESET_STEP=marker``)."""
    return _carrying(f"{STEP_VARIABLE}={marker}")


def _carrying(variable: str, *, spare_steps: bool = False) -> list[int]:
    needle = variable.encode()
    step = f"{STEP_VARIABLE}=".encode()
    found = []
    me = os.getpid()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        entries = environ.split(b"\0")
        if needle in entries and not (spare_steps and any(e.startswith(step)
                                                           for e in entries)):
            found.append(int(entry.name))
    return found


def stop_all(key: str, groups: Sequence[int] = (), grace: float = STOP_GRACE, *,
             spare_steps: bool = False) -> None:
    """Stop every process of an instance: SIGTERM, up to ``grace`` seconds, then SIGKILL.

    ``spare_steps``: not the provisioning steps a killed control plane left running
    (the next one waits for them instead of running them again).
    """
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    pids = set(marked(key, spare_steps=spare_steps))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not [p for p in pids if start_time(p) is not None] and not marked(
                key, spare_steps=spare_steps):
            return
        time.sleep(0.02)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    for pid in marked(key, spare_steps=spare_steps):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
