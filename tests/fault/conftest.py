"""The fault suite's fixtures: a hard time bound per test, and nothing left running.

pytest-timeout is not installed, so each test here is bounded by ``SIGALRM``
(tests run in pytest's main thread): the alarm fails the test, and the
fixtures' teardown still kills whatever the test started.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TypeVar

import pytest

from tests.e2e.server import kill_instances

DEFAULT_TIMEOUT = 120
"""Seconds a fault test may take unless it says otherwise with ``hard_timeout``."""
F = TypeVar("F", bound=Callable[..., object])


def hard_timeout(seconds: int) -> Callable[[F], F]:
    """Give one test its own bound (read by the ``_alarm`` fixture)."""
    def mark(test: F) -> F:
        test.__dict__["hard_timeout"] = seconds
        return test
    return mark


@pytest.fixture(autouse=True)
def _alarm(request: pytest.FixtureRequest) -> Iterator[None]:
    seconds = int(getattr(request.function, "hard_timeout", DEFAULT_TIMEOUT))

    def expired(signum: int, frame: FrameType | None) -> None:
        pytest.fail(f"the fault test ran past its hard timeout of {seconds} s", pytrace=True)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def processes_under(root: Path) -> dict[int, str]:
    """``{pid: cmdline}`` of every live process whose cwd or command line lies under ``root``.

    What an orphan looks like from outside: an instance (its cwd is its OS disk),
    a custom-data script or an extension command (run from the disk), or a
    ``serve`` (its ``--data-dir``) that outlived the test.
    """
    # As root, instances live where <data-dir>/instances links to (server/instance_dir.py).
    reals = {os.path.realpath(root), os.path.realpath(root / "instances")}
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if state == "Z":
            continue
        if any(cwd == real or cwd.startswith(real + os.sep) or real + os.sep in cmdline + os.sep
               for real in reals):
            found[int(entry.name)] = cmdline
    return found


def kill_all_under(root: Path) -> None:
    """SIGKILL every process :func:`processes_under` finds (instances first)."""
    kill_instances(root)
    for pid in processes_under(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory for ``serve``; every process still under it is killed at the end."""
    directory = tmp_path / "data"
    directory.mkdir()
    try:
        yield directory
    finally:
        kill_all_under(directory)
