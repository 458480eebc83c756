"""Waiting for a rolling upgrade to end, as a script does after a publish.

An automatic run starts on its own, maybe later (rollout delays, maintenance
windows, instances still booting), so "wait for the upgrade" means: until the
run towards a version (or the latest run, whatever it is) has ended. While no
such run exists, what holds it is the scale set's ``OSUpgrade/...``
instance-view status; each new one is reported once, so the user sees why
nothing happens yet.

The loop is bounded by a timeout and sleeps through the client's ``sleep``,
so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from scaleset.cli.client import ArmClient, ArmClientError, ClientError

RUNNING: Final = frozenset({"RollingForward", "RollingBack"})
Clock = Callable[[], float]
Report = Callable[[str], None]


def _status_code(item: Any) -> str | None:
    code = ((item or {}).get("properties") or {}).get("runningStatus", {}).get("code")
    return str(code) if code else None


def _run_for(client: ArmClient, path: str, version: str) -> dict[str, Any] | None:
    """The newest OS upgrade attempt towards ``version``, from the history (None: none)."""
    for item in client.paged(path + "/osUpgradeHistory"):
        reference = (item.get("properties") or {}).get("targetImageReference") or {}
        if str(reference.get("version") or "") == version:
            return dict(item)
    return None


def _latest(client: ArmClient, path: str) -> dict[str, Any] | None:
    try:
        found = client.get(path + "/rollingUpgrades/latest")
    except ArmClientError as exc:
        if exc.status == 404:
            return None
        raise
    return dict(found) if isinstance(found, dict) else None


def _pending(client: ArmClient, path: str) -> str | None:
    """The scale set's ``OSUpgrade/...`` status as one line (None: nothing pending)."""
    view = client.get(path + "/instanceView")
    for status in (view or {}).get("statuses") or []:
        code = str(status.get("code") or "")
        if code.startswith("OSUpgrade/"):
            return f"{code}: {status.get('message', '')}"
    return None


def wait_for_run(client: ArmClient, path: str, *, version: str | None, timeout: float,
                 report: Report, clock: Clock = time.monotonic) -> dict[str, Any]:
    """Poll until the run towards ``version`` (None: the latest run) has ended; return it.

    With ``version``, the result is that attempt's ``osUpgradeHistory`` entry;
    without, ``rollingUpgrades/latest``. Raises ``ClientError`` (code
    ``WaitTimeout``) when nothing ended within ``timeout`` seconds.
    """
    deadline = clock() + timeout
    said: str | None = None
    while True:
        run = _run_for(client, path, version) if version else _latest(client, path)
        code = _status_code(run)
        if run is not None and code not in RUNNING:
            return run
        if run is None:
            pending = _pending(client, path)
            line = pending or (f"no rolling upgrade to {version} yet" if version
                               else "no rolling upgrade yet")
        else:
            progress = (run.get("properties") or {}).get("progress") or {}
            line = (f"{code}: {progress.get('successfulInstanceCount', 0)} succeeded, "
                    f"{progress.get('failedInstanceCount', 0)} failed, "
                    f"{progress.get('pendingInstanceCount', 0)} pending")
        if line != said:
            report(line)
            said = line
        if clock() >= deadline:
            what = f"the rolling upgrade to {version}" if version else "a rolling upgrade"
            raise ClientError("WaitTimeout", f"{what} did not end within {timeout:g} s "
                                             f"(last seen: {line})")
        client.sleep(client.default_poll_interval)
