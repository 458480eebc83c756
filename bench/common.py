"""Helpers shared by the benchmarks in bench/: the machine line, repeats, process CPU.

Every benchmark prints ``machine()`` first, so a figure is never read without the
hardware it came from; ``spread`` turns repeated measurements into the min and
median the closing notes quote.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import statistics
from collections.abc import Sequence
from pathlib import Path


def machine() -> str:
    """CPU model, cores, Python and OS in one line (``/proc/cpuinfo`` where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The min and median of repeated measurements.

    >>> spread([3.0, 1.0, 2.0])
    (1.0, 2.0)
    """
    return min(values), statistics.median(values)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, so utime (14) and stime (15) sit at 11, 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
