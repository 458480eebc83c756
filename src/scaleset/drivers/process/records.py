"""What the process driver remembers about an instance, on disk, so a restart loses nothing.

Each instance has a directory ``<root>/<scale set key>/<instance id>/`` holding
``state.json`` (this module's ``InstanceState``), its OS disks under ``os/``,
its data disks under ``disks/`` and its serial console log ``console.log``.
``state.json`` is replaced atomically (write, fsync, rename) after every step
that changes it, so a crash leaves either the old or the new state.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scaleset.drivers.base import ExtensionSpec
from scaleset.model.instance import ExtensionStatus

STATE_FILE = "state.json"
OP_HISTORY = 32  # operation outcomes kept per instance: enough for any retry of a pass


def scale_set_key(scale_set_id: str) -> str:
    """A directory name for a scale set: readable, and unique whatever the id's length."""
    name = scale_set_id.rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "vmss"
    return f"{safe}-{hashlib.sha1(scale_set_id.encode()).hexdigest()[:10]}"


@dataclass
class DiskState:
    """One OS disk: which image it was built from and what was provisioned on it."""

    disk_id: str
    image_version: str | None
    generation: int
    digest: str | None
    extensions: list[dict[str, Any]] = field(default_factory=list)
    custom_data: str | None = None
    health_source: bool = True
    extension_statuses: list[dict[str, Any]] = field(default_factory=list)
    provisioned: bool = False
    """Custom data and extensions ran on this disk (they never run twice on one disk)."""

    def extension_specs(self) -> list[ExtensionSpec]:
        return [ExtensionSpec(**e) for e in self.extensions]

    def statuses(self) -> tuple[ExtensionStatus, ...]:
        return tuple(ExtensionStatus(**s) for s in self.extension_statuses)


@dataclass
class OpState:
    state: str  # an OperationState value
    finished_at: str | None = None
    message: str | None = None
    disk_id: str | None = None
    """Set once the operation swapped this disk in: from then on it is resumed, not redone."""


@dataclass
class InstanceState:
    scale_set_id: str
    instance_id: str
    private_ip: str
    os_disk: DiskState
    data_disks: list[tuple[int, str]]  # (lun, disk id), in lun order
    previous: DiskState | None = None
    running: bool = True
    """Desired: the instance should run. False after a failed reimage (down until repaired)
    and after the user powered it off or deallocated it."""
    deallocated: bool = False
    """Deallocated by the user: its address is released (``private_ip`` is empty) until it
    starts again."""
    failed: bool = False
    pid: int | None = None
    pid_started: int | None = None  # /proc/<pid>/stat start time: tells a reused pid apart
    incarnation: str = ""
    """Random, per created instance: a scale set deleted and made again under the same
    name reuses instance ids, and the old instance's clean-up must not touch the new."""
    ops: dict[str, OpState] = field(default_factory=dict)

    def remember(self, op_id: str, outcome: OpState) -> None:
        self.ops[op_id] = outcome
        while len(self.ops) > OP_HISTORY:
            self.ops.pop(next(iter(self.ops)))


def extension_dict(spec: ExtensionSpec) -> dict[str, Any]:
    return {"name": spec.name, "publisher": spec.publisher, "type": spec.type,
            "type_handler_version": spec.type_handler_version,
            "settings": dict(spec.settings), "protected_settings": dict(spec.protected_settings)}


def status_dict(status: ExtensionStatus) -> dict[str, Any]:
    """An extension status as ``DiskState.extension_statuses`` keeps it."""
    return {"name": status.name, "type": status.type, "state": status.state,
            "message": status.message, "type_handler_version": status.type_handler_version}


def _disk(data: dict[str, Any] | None) -> DiskState | None:
    return DiskState(**data) if data is not None else None


def load(path: Path) -> InstanceState:
    """Read ``state.json`` (raises ``OSError``/``ValueError`` on a missing or torn file)."""
    data = json.loads(path.read_text())
    os_disk = _disk(data.pop("os_disk"))
    assert os_disk is not None
    previous = _disk(data.pop("previous"))
    ops = {k: OpState(**v) for k, v in data.pop("ops").items()}
    data["data_disks"] = [tuple(d) for d in data["data_disks"]]
    return InstanceState(os_disk=os_disk, previous=previous, ops=ops, **data)


def save(path: Path, state: InstanceState) -> None:
    """Replace ``state.json`` atomically."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(asdict(state), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
