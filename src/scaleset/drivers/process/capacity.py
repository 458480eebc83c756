"""How many more instances this machine can hold: a pure verdict over a snapshot.

``room`` decides from numbers alone (free memory, pids in use and their
limits); ``read_snapshot`` is the thin reader of ``/proc``, the cgroup and the
resource limits. An instance costs about ``MEMORY_PER_INSTANCE`` of memory
and ``PIDS_PER_INSTANCE`` processes (its entrypoint, probes' helpers, a
custom data script and the daemons it starts); ``RESERVE_*`` stay free for
the control plane itself and the rest of the machine.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

MEMORY_PER_INSTANCE = 32 << 20  # bytes: a small web application in Python
PIDS_PER_INSTANCE = 8
RESERVE_MEMORY = 256 << 20  # bytes kept free for the control plane and the machine
RESERVE_PIDS = 256
_PROC = Path("/proc")
_CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Snapshot:
    """What limits instances here; ``None`` where this machine does not say."""

    memory_available: int | None
    """Bytes, ``MemAvailable`` of ``/proc/meminfo``."""
    pid_limits: tuple[tuple[str, int, int], ...] = ()
    """(name, limit, in use) of every pid limit that holds: kernel.pid_max, the cgroup's
    pids.max, RLIMIT_NPROC."""


def room(snapshot: Snapshot, additional: int, instances: int = 0) -> str | None:
    """``None`` if ``additional`` more instances fit, else why not (the limit and the values).

    ``instances`` is how many instances this driver already runs: their memory is already
    taken out of ``memory_available``, so only the new ones are counted against it.
    """
    if additional <= 0:
        return None
    if snapshot.memory_available is not None:
        need = additional * MEMORY_PER_INSTANCE
        spare = snapshot.memory_available - RESERVE_MEMORY
        if need > spare:
            fits = max(0, spare // MEMORY_PER_INSTANCE)
            return (f"this machine has {snapshot.memory_available >> 20} MiB of memory "
                    f"available (MemAvailable); {additional} more instances need "
                    f"{need >> 20} MiB at {MEMORY_PER_INSTANCE >> 20} MiB each, keeping "
                    f"{RESERVE_MEMORY >> 20} MiB free: at most {fits} more fit "
                    f"(it runs {instances})")
    need = additional * PIDS_PER_INSTANCE
    for name, limit, in_use in snapshot.pid_limits:
        spare = limit - in_use - RESERVE_PIDS
        if need > spare:
            fits = max(0, spare // PIDS_PER_INSTANCE)
            return (f"{name} is {limit} processes and {in_use} are in use; "
                    f"{additional} more instances need {need} at {PIDS_PER_INSTANCE} "
                    f"each, keeping {RESERVE_PIDS} free: at most {fits} more fit "
                    f"(it runs {instances})")
    return None


def read_snapshot() -> Snapshot:
    """Read this machine's numbers (each ``None``/left out when it cannot be read)."""
    limits: list[tuple[str, int, int]] = []
    tasks = _count_tasks()
    pid_max = _read_int(_PROC / "sys" / "kernel" / "pid_max")
    if pid_max is not None:
        limits.append(("kernel.pid_max", pid_max, tasks))
    cgroup = _own_cgroup()
    if cgroup is not None:
        pids_max = _read_int(cgroup / "pids.max")  # "max" (no limit) reads as None
        current = _read_int(cgroup / "pids.current")
        if pids_max is not None and current is not None:
            limits.append((f"the cgroup's pids.max ({cgroup})", pids_max, current))
    if os.geteuid() != 0:  # root is not held to RLIMIT_NPROC; counting all is conservative
        soft, _hard = resource.getrlimit(resource.RLIMIT_NPROC)
        if soft != resource.RLIM_INFINITY:
            limits.append(("RLIMIT_NPROC (ulimit -u)", soft, tasks))
    return Snapshot(memory_available=_mem_available(), pid_limits=tuple(limits))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _mem_available() -> int | None:
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _own_cgroup() -> Path | None:
    """The cgroup v2 directory this process is in (``None`` without cgroup v2)."""
    try:
        for line in (_PROC / "self" / "cgroup").read_text().splitlines():
            if line.startswith("0::"):
                path = _CGROUP / line[3:].lstrip("/")
                return path if path.is_dir() else None
    except OSError:
        return None
    return None


def _count_tasks() -> int:
    """Threads on the machine (each takes a pid)."""
    count = 0
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                count += len(os.listdir(entry / "task"))
            except OSError:  # gone meanwhile
                continue
    return count
