"""First boot of a new OS disk: custom data, then the extensions in sequence, once each.

Runs once per OS disk (the disk records ``provisioned``); the statuses it
leaves on the disk record are what the instance view shows, including
``Creating`` for the extension in progress.

Exactly once per OS disk, even when the control plane is killed (kill -9) at
any moment: every step has a durable marker in ``state.json``
(``DiskState.steps``), and a command of a step (custom data, a CustomScript)
runs in a wrapper that writes its exit status on the OS disk when it ends.

* ``started`` is written and fsynced *before* the command is spawned, then again
  with its pid once spawned. A kill between the two leaves no pid: the command
  never started, is still running (found by its ``SCALESET_STEP`` marker: waited
  for), or ran (the wrapper's first act left ``<status>.began`` on the disk: never
  run again). Only the first case runs it now.
* A control plane killed mid-step does not take the step with it: the command
  is in a session of its own and goes on. The next control plane finds it by
  its marker and waits for it, then reads the exit status the wrapper wrote.
* ``started`` with a pid, no such process and no exit status means the command
  was killed while it ran (not by us: the machine, an operator). It may have
  done part of its work, so it is never run again: the step fails, saying so.
* ``done`` keeps the step's status; a done step is not looked at again.

A graceful stop of the control plane starts no new step and lets a step in
progress finish, for up to ``ProcessDriver.step_stop_grace`` seconds (10 by
default): the steps still to come run at the next start, so a stop, like a
kill, runs nothing twice. Only a step that outlasts that bound is killed by the
stop; as Azure's agent reruns an extension interrupted by a reboot, that step
is forgotten and runs again at the next start (the stop is ours, and a step
cut short by it is known not to have finished). A new OS disk (reimage,
upgrade) has no markers: everything runs again on it, as Azure does.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from scaleset.artifacts.sources import SourceRules
from scaleset.drivers.process import disks, extensions, processes
from scaleset.drivers.process.instance import LiveInstance
from scaleset.drivers.process.records import Inputs, status_dict
from scaleset.drivers.process.processes import RunAs
from scaleset.drivers.base import ExtensionSpec
from scaleset.model.instance import ExtensionStatus

CUSTOM_DATA_STEP = "customData"
POLL = 0.1  # seconds between looks at a step a killed control plane left running
# The wrapper: run the command, then write its status beside it (atomically, by rename).
# Its first act is to leave "<status>.began": a control plane killed after the spawn but
# before it saved the pid tells "never ran" (run it now) from "ran" (never again) by it.
WRAPPER = ('st="$1"; shift; echo "$$" > "$st.began"; "$@"; c=$?; '
           'echo "$c" > "$st.tmp" && mv "$st.tmp" "$st"; exit "$c"')
INTERRUPTED = ("interrupted: its processes were killed while it ran; not run again on this "
               "OS disk, since it may have done part of its work (reimage the instance to "
               "provision a new OS disk)")


class _Stopping(Exception):
    """The control plane is stopping while a step runs."""


@dataclass
class Steps:
    """Runs an OS disk's commands once each; see the module's docstring."""

    live: LiveInstance
    env: dict[str, str]
    stopping: threading.Event
    run_as: RunAs | None
    console: IO[bytes]
    budget: float = extensions.DEFAULT_BUDGET
    sources: SourceRules = field(default_factory=SourceRules)
    """What extensions' fileUris may reach."""

    def command(self, step: str, argv: list[str], stdout: Path | None = None,
                stderr: Path | None = None) -> int:
        """Exit status of the step's command, run at most once on this OS disk.

        Raises ``extensions.ExtensionFailed`` (timed out, interrupted) and
        ``_Stopping``.
        """
        disk = self.live.state.os_disk
        os_disk = self.live.disk_path(disk)
        status_file = os_disk / disks.MARKER_DIR / "steps" / f"{_safe(step)}.status"
        marker = f"{self.live.key}/{disk.disk_id}/{step}"
        record = disk.steps.get(step)
        # The disk's own files are the last word: a resumed operation may carry a record
        # saved before the step began, but "<status>.began" says it ran on this disk.
        self.live.stepping = True  # before looking at stopping: close() waits for it
        try:
            if record is None and not _began(status_file) and not status_file.exists():
                if self.stopping.is_set():
                    raise _Stopping  # nothing of it has happened: it runs at the next start
                self._start(step, argv, status_file, marker, stdout, stderr)
            else:
                self._await_leftover(marker)
        finally:
            self.live.stepping = False
        code = _read_status(status_file)
        if code is None:
            if self.stopping.is_set():  # we killed it, stopping: it runs at the next start
                disk.steps.pop(step, None)
                _began_file(status_file).unlink(missing_ok=True)
                self.live.save()
                raise _Stopping
            if disk.steps.get(step, {}).get("timed_out"):
                raise extensions.ExtensionFailed(
                    f"the command did not finish within {self.budget:.0f} s "
                    "(extensionsTimeBudget)")
            if disk.steps.get(step, {}).get("pid") is None and not _began(status_file):
                # Never spawned (killed between the marker and the spawn): run it now.
                disk.steps.pop(step, None)
                self.live.save()
                return self.command(step, argv, stdout, stderr)
            raise extensions.ExtensionFailed(INTERRUPTED)
        return code

    def _start(self, step: str, argv: list[str], status_file: Path, marker: str,
               stdout: Path | None, stderr: Path | None) -> None:
        disk = self.live.state.os_disk
        os_disk = self.live.disk_path(disk)
        status_file.parent.mkdir(parents=True, exist_ok=True)
        self._own(status_file.parent)
        status_file.unlink(missing_ok=True)
        _began_file(status_file).unlink(missing_ok=True)
        disk.steps[step] = {"phase": "started", "pid": None}
        self.live.save()  # durable before the command can have any effect
        env = {**self.env, processes.STEP_VARIABLE: marker}
        wrapped = ["/bin/sh", "-c", WRAPPER, "scaleset-step", str(status_file), *argv]
        out = open(stdout, "wb") if stdout is not None else None
        err = open(stderr, "wb") if stderr is not None else None
        try:
            for path in (stdout, stderr):
                if path is not None:
                    self._own(path)
            process = processes.spawn(wrapped, cwd=os_disk, env=env,
                                      log=out or self.console, stderr=err,
                                      run_as=self.run_as)
        finally:
            for f in (out, err):
                if f is not None:
                    f.close()
        self.live.groups.add(process.pid)
        disk.steps[step] = {"phase": "started", "pid": process.pid}
        self.live.save()
        try:
            process.wait(timeout=self.budget)
        except subprocess.TimeoutExpired:
            disk.steps[step]["timed_out"] = True
            self.live.save()
            _kill_group(process.pid)
            process.wait()

    def _await_leftover(self, marker: str) -> None:
        """Wait for the step's processes a killed control plane left running.

        A graceful stop meanwhile waits too (``stepping``), then kills what is left:
        the step is then one the stop cut short, and ``command`` forgets it.
        """
        deadline = time.monotonic() + self.budget
        announced = False
        while processes.step_processes(marker):
            if not announced:
                self.console.write(b"[scaleset] waiting for a provisioning step started "
                                   b"before the control plane restarted\n")
                self.console.flush()
                announced = True
            if time.monotonic() > deadline:
                for pid in processes.step_processes(marker):
                    _kill_group(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                break
            time.sleep(POLL)

    def _own(self, path: Path) -> None:
        if self.run_as is not None:
            os.chown(path, self.run_as.uid, self.run_as.gid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _began_file(status_file: Path) -> Path:
    return status_file.with_name(status_file.name + ".began")


def _began(status_file: Path) -> bool:
    """Whether the wrapper started the step's command (it may have done part of its work)."""
    return _began_file(status_file).exists()


def _safe(step: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in step)


def _read_status(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def provision(live: LiveInstance, custom_data: bytes, env: dict[str, str],
              stopping: threading.Event, run_as: RunAs | None = None,
              inputs: Inputs | None = None, sources: SourceRules | None = None
              ) -> list[ExtensionStatus] | None:
    """Run custom data (when it is a script) and every extension; ``None`` if interrupted.

    The disk's extension statuses are updated as it goes; on an interruption by a
    stop they are cleared (the steps not done run at the next start).
    """
    disk = live.state.os_disk
    path = live.disk_path(disk)
    protected = (inputs or Inputs()).protected_settings
    statuses: list[ExtensionStatus] = []
    with live.console_file() as console:
        steps = Steps(live, env, stopping, run_as, console,
                      sources=sources or SourceRules())
        try:
            if custom_data.startswith(b"#!"):
                _run_custom_data(steps, path, console)
            for spec in disk.extension_specs():
                if stopping.is_set():
                    raise _Stopping
                statuses.append(_extension(steps, spec, protected.get(spec.name, {}),
                                           statuses))
        except (_Stopping, extensions.Interrupted):
            disk.extension_statuses = []
            return None
    disk.extension_statuses = [status_dict(s) for s in statuses]
    disk.provisioned = True
    live.save()
    return statuses


def _extension(steps: Steps, spec: ExtensionSpec, protected: dict[str, Any],
               before: list[ExtensionStatus]) -> ExtensionStatus:
    live, disk = steps.live, steps.live.state.os_disk
    step = f"extension:{spec.name}"
    record = disk.steps.get(step, {})
    if record.get("phase") == "done":
        return ExtensionStatus(**record["status"])
    disk.extension_statuses = [status_dict(s) for s in before] + [
        status_dict(ExtensionStatus(spec.name, f"{spec.publisher}.{spec.type}",
                                    "Creating", None, spec.type_handler_version))]
    full = dataclasses.replace(spec, protected_settings=protected or spec.protected_settings)
    ctx = extensions.Context(
        os_disk=live.disk_path(disk), env=steps.env, console=steps.console,
        spawn_group=live.groups.add, budget=steps.budget,
        sources=steps.sources,
        run=lambda argv, out, err: steps.command(step, argv, out, err), own=steps._own)
    status = extensions.run(full, ctx)
    disk.steps[step] = {"phase": "done", "status": status_dict(status)}
    live.save()
    return status


def _run_custom_data(steps: Steps, os_disk: Path, console: IO[bytes]) -> None:
    disk = steps.live.state.os_disk
    if disk.steps.get(CUSTOM_DATA_STEP, {}).get("phase") == "done":
        return
    script = disks.custom_data_path(os_disk)
    console.write(b"[scaleset] running custom data\n")
    console.flush()
    try:
        code: int | str = steps.command(CUSTOM_DATA_STEP, disks.script_argv(script))
    except extensions.ExtensionFailed as exc:
        code = str(exc)
    # Like cloud-init, a failing user script is reported, not fatal to provisioning.
    console.write(f"[scaleset] custom data exited with status {code}\n".encode())
    console.flush()
    disk.steps[CUSTOM_DATA_STEP] = {"phase": "done", "status": {"exit": code}}
    steps.live.save()
