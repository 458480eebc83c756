"""The process driver's room: how many more instances this machine holds (a pure verdict)."""

from __future__ import annotations

from pathlib import Path

from scaleset.artifacts import ArtifactStore
from scaleset.drivers.process import capacity
from scaleset.drivers.process.capacity import Snapshot, room
from scaleset.drivers.process.driver import ProcessDriver

GIB = 1 << 30


def test_room_when_memory_and_pids_suffice() -> None:
    snapshot = Snapshot(memory_available=8 * GIB,
                        pid_limits=(("kernel.pid_max", 32768, 400),))
    assert room(snapshot, 10) is None
    assert room(snapshot, 0) is None


def test_memory_refuses_with_the_numbers_and_how_many_fit() -> None:
    snapshot = Snapshot(memory_available=1 * GIB, pid_limits=())
    why = room(snapshot, 1000, instances=3)
    assert why is not None
    assert "MemAvailable" in why and "1024 MiB" in why and "1000 more instances" in why
    fits = (GIB - capacity.RESERVE_MEMORY) // capacity.MEMORY_PER_INSTANCE
    assert f"at most {fits} more fit" in why
    assert room(snapshot, fits) is None  # exactly what it says fits, fits
    assert room(snapshot, fits + 1) is not None


def test_the_tightest_pid_limit_refuses() -> None:
    snapshot = Snapshot(memory_available=64 * GIB, pid_limits=(
        ("kernel.pid_max", 4_194_304, 500), ("the cgroup's pids.max (/x)", 1000, 600)))
    why = room(snapshot, 50)
    assert why is not None and "pids.max" in why and "1000 processes" in why
    assert "600 are in use" in why
    fits = (1000 - 600 - capacity.RESERVE_PIDS) // capacity.PIDS_PER_INSTANCE
    assert room(snapshot, fits) is None and room(snapshot, fits + 1) is not None


def test_unknown_numbers_do_not_refuse() -> None:
    assert room(Snapshot(memory_available=None), 10**6) is None


def test_the_machine_snapshot_reads_and_the_driver_answers(tmp_path: Path) -> None:
    snapshot = capacity.read_snapshot()
    assert snapshot.memory_available is not None and snapshot.memory_available > 0
    assert any(name == "kernel.pid_max" for name, _limit, _used in snapshot.pid_limits)
    driver = ProcessDriver(tmp_path / "instances", ArtifactStore(tmp_path / "images"))
    try:
        assert driver.instance_room(1) is None
        why = driver.instance_room(10**9)
        assert why is not None and "more fit" in why
    finally:
        driver.close()
