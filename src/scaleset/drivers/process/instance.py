"""One instance as the process driver holds it: persisted state plus what lives in memory.

``LiveInstance`` couples the instance's ``state.json`` (``records``) with its
process handle, process groups, restart schedule and serial console file.
Whoever changes an instance holds ``lock``; ``state.json`` writes and the
operation log go through ``save_lock``.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scaleset.drivers.process import processes, records
from scaleset.drivers.process.records import DiskState, InstanceState, OpState
from scaleset.model.instance import PowerState

CONSOLE = "console.log"
CONSOLE_KEEP = 1 << 20  # bytes of console output kept across boots
CONSOLE_ROTATE = 4 << 20
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0


@dataclass(eq=False)
class LiveInstance:
    """An instance as this process sees it: its state plus what only exists in memory."""

    state: InstanceState
    directory: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Held by whatever changes the instance (an operation, the supervisor)."""
    save_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while ``state.json`` is written or the operation log changes."""
    busy: str | None = None  # "create" or the id of the operation in progress
    queued: bool = False
    """Work for it is queued (a boot after adoption): the supervisor leaves it alone."""
    stepping: bool = False
    """A provisioning step's command runs: a graceful stop lets it finish (bounded)."""
    power_phase: PowerState | None = None
    """stopping / deallocating / starting while a power verb is under way."""
    popen: subprocess.Popen[bytes] | None = None
    groups: set[int] = field(default_factory=set)
    restart_at: float | None = None
    backoff: float = BACKOFF_FIRST
    started_at: float = 0.0

    @property
    def key(self) -> str:
        """The environment marker every process of this instance carries."""
        return (f"{records.scale_set_key(self.state.scale_set_id)}/{self.state.instance_id}/"
                f"{self.state.incarnation}")

    @property
    def state_file(self) -> Path:
        return self.directory / records.STATE_FILE

    def disk_path(self, disk: DiskState) -> Path:
        return self.directory / "os" / disk.disk_id

    def save(self) -> None:
        with self.save_lock:
            records.save(self.state_file, self.state)

    def record(self, op_id: str, outcome: OpState, *, only_if_new: bool = False,
               persist: bool = True) -> bool:
        """Log an operation's outcome (and persist it); ``False`` if ``only_if_new`` and known."""
        with self.save_lock:
            if only_if_new and op_id in self.state.ops:
                return False
            self.state.remember(op_id, outcome)
            if persist:
                records.save(self.state_file, self.state)
            return True

    def process_alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        pid = self.state.pid
        return pid is not None and processes.alive(pid, self.state.pid_started)

    # -- the serial console ------------------------------------------------------
    def console_file(self) -> IO[bytes]:
        """The console log opened for appending (cut to its last MiB when it grew past 4)."""
        path = self.directory / CONSOLE
        try:
            if path.stat().st_size > CONSOLE_ROTATE:
                with open(path, "rb") as f:
                    f.seek(-CONSOLE_KEEP, os.SEEK_END)
                    tail = f.read()
                path.write_bytes(tail)
        except FileNotFoundError:
            pass
        # The control plane's, 0600: an instance's own console may show secrets it echoed.
        return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")

    def note(self, line: str) -> None:
        """A line from the control plane in the console log."""
        with self.console_file() as console:
            console.write(f"[scaleset] {line}\n".encode())

    def console_tail(self) -> bytes:
        """The last MiB of the console log (empty before the first boot)."""
        try:
            with open(self.directory / CONSOLE, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - CONSOLE_KEEP))
                return f.read()
        except FileNotFoundError:
            return b""
