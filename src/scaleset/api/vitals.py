"""What ``/healthz`` reports of storage and reads, and how a full disk is recognised.

``Vitals`` (one per app, ``vitals_of``) is written by the envelope when a write finds
no space or a read fails, and by admission when a read is answered; the server
never stops trying writes, so it recovers alone once space returns, and
``/healthz`` turns ok again at the next write that succeeds (or ``RECENT_SECONDS``
after the last failure, when no write came).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STORAGE_RETRY_AFTER_SECONDS = 30
"""How long a client refused for a full disk waits: freeing space takes an operator."""
RECENT_SECONDS = 30.0
"""A storage failure this recent keeps ``/healthz`` degraded after space seems to return."""
_SQLSTATE_DISK_FULL = "53100"
LOW_SPACE_BYTES = 16 * 1024 * 1024
"""Free space below this (or below 5 % of a smaller filesystem) is reported as degraded."""


@dataclass
class Vitals:
    """What the server saw of its storage and its reads (monotonic seconds; 0: never)."""

    storage_failed_at: float = 0.0
    storage_failure: str = ""
    write_ok_at: float = 0.0
    """The last write answered without error: space was there then."""
    read_ok_at: float = 0.0
    read_failed_at: float = 0.0
    read_failure: str = ""

    def storage_full(self, reason: str) -> None:
        """A write failed for lack of space."""
        self.storage_failed_at, self.storage_failure = time.monotonic(), reason

    def read_failed(self, reason: str) -> None:
        """A read could not be answered (the database failed it)."""
        self.read_failed_at, self.read_failure = time.monotonic(), reason


def vitals_of(app: Any) -> Vitals:
    """The ``Vitals`` the app's admission keeps (one per app)."""
    vitals = getattr(app.state, "vitals", None)
    if not isinstance(vitals, Vitals):
        vitals = Vitals()
        app.state.vitals = vitals
    return vitals


def caused_by_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is a write that found no space: ENOSPC or EDQUOT
    (``shutil.copytree`` gathers its failures as text), SQLite's SQLITE_FULL ("database or
    disk is full"), PostgreSQL's disk_full (SQLSTATE 53100). The store's ``StorageFull``
    is raised from the driver's error, so it is recognised by its cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, shutil.Error) and any(
                "No space left" in str(item) or "Disk quota" in str(item)
                for item in (current.args[0] if current.args else [])):
            return True
        if "database or disk is full" in str(current).lower() or _SQLSTATE_DISK_FULL in (
                getattr(current, "sqlstate", None), getattr(current, "pgcode", None)):
            return True
        current = current.__cause__ or current.__context__
    return False


def storage_report(paths: Iterable[Path], vitals: Vitals, *, now: float | None = None
                   ) -> dict[str, Any]:
    """``/healthz``'s storage section: the least free space of ``paths``' filesystems and
    whether writes can be expected to succeed (``ok``) and, if not, why."""
    now = time.monotonic() if now is None else now
    free: int | None = None
    reason = ""
    for path in paths:
        try:
            stat = os.statvfs(path)
        except OSError:
            continue
        available, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
        threshold = min(LOW_SPACE_BYTES, total // 20)
        if free is None or available < free:
            free = available
        if available < threshold and not reason:
            reason = (f"{available} bytes free under {path}, below {threshold}; writes may "
                      "fail with 507 until space is freed")
    if (not reason and vitals.storage_failed_at > vitals.write_ok_at
            and now - vitals.storage_failed_at < RECENT_SECONDS):
        reason = (f"a write failed for lack of space {now - vitals.storage_failed_at:.0f} s ago "
                  f"({vitals.storage_failure})")
    report: dict[str, Any] = {"ok": not reason}
    if free is not None:
        report["free"] = free
    if reason:
        report["reason"] = reason
    return report


def reads_failing(vitals: Vitals, *, now: float | None = None) -> str | None:
    """Why reads cannot be served now (the last read failed, recently, and none succeeded
    since), else None."""
    now = time.monotonic() if now is None else now
    if (vitals.read_failed_at > vitals.read_ok_at
            and now - vitals.read_failed_at < RECENT_SECONDS):
        return vitals.read_failure
    return None
