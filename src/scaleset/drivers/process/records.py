"""What the process driver remembers about an instance, on disk, so a restart loses nothing.

Each instance has a directory ``<root>/<scale set key>/<instance id>/`` holding
``state.json`` (this module's ``InstanceState``), its OS disks under ``os/``,
its data disks under ``disks/`` and its serial console log ``console.log``.
``state.json`` is replaced atomically (write, fsync, rename) after every step
that changes it, so a crash leaves either the old or the new state. It is
0600 and holds no secret: ``customData`` and extensions' protected settings of
a disk not yet provisioned wait in ``inputs-<disk id>.json`` (0600, the control
plane's; ``Inputs``), which goes once the disk is provisioned; the custom data
then lives on the instance's own OS disk, as Azure's ``/var/lib/waagent/CustomData``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    """Without protected settings (those are in the disk's ``Inputs``)."""
    health_source: bool = True
    extension_statuses: list[dict[str, Any]] = field(default_factory=list)
    provisioned: bool = False
    """Custom data and extensions ran on this disk (they never run twice on one disk)."""
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Durable markers of provisioning, per step ("customData", "extension:<name>"):
    ``{"phase": "started", "pid": …}`` written before the step can have an effect,
    ``{"phase": "done", "status": …}`` once it ended (``provision.py``)."""

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
    uid: int | None = None
    """The unprivileged user (and group) the instance's processes run as when the control
    plane is root; ``None``: as the control plane's user (not root, or an older record)."""
    incarnation: str = ""
    """Random, per created instance: a scale set deleted and made again under the same
    name reuses instance ids, and the old instance's clean-up must not touch the new."""
    ops: dict[str, OpState] = field(default_factory=dict)

    def remember(self, op_id: str, outcome: OpState) -> None:
        self.ops[op_id] = outcome
        while len(self.ops) > OP_HISTORY:
            self.ops.pop(next(iter(self.ops)))


@dataclass
class Inputs:
    """A disk's secret provisioning inputs, kept out of ``state.json``."""

    custom_data: str | None = None
    protected_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per extension name."""


def inputs_file(directory: Path, disk_id: str) -> Path:
    return directory / f"inputs-{disk_id}.json"


class Sealer(Protocol):
    """Seals secrets at rest (the server's keyring, ``security/secrets.py``)."""

    def seal(self, plaintext: str, *, context: str) -> str: ...

    def unseal(self, value: str, *, context: str) -> str: ...


def save_inputs(directory: Path, disk_id: str, inputs: Inputs,
                sealer: Sealer | None = None) -> None:
    """Write a disk's inputs durably (0600) before anything relies on them, sealed with
    ``sealer`` when there is one (bound to the disk: a file moved to another does not open)."""
    data = asdict(inputs)
    if sealer is not None:
        data = {"sealed": sealer.seal(json.dumps(data), context=f"inputs/{disk_id}")}
    _write(inputs_file(directory, disk_id), data)


def load_inputs(directory: Path, disk_id: str, sealer: Sealer | None = None) -> Inputs:
    """A disk's inputs; empty once provisioned (or for a disk that never had any)."""
    try:
        data = json.loads(inputs_file(directory, disk_id).read_text())
    except FileNotFoundError:
        return Inputs()
    if "sealed" in data:
        if sealer is None:
            raise ValueError(f"the inputs of OS disk {disk_id} are sealed and no key was given")
        data = json.loads(sealer.unseal(data["sealed"], context=f"inputs/{disk_id}"))
    return Inputs(**data)


def drop_inputs(directory: Path, disk_id: str) -> None:
    inputs_file(directory, disk_id).unlink(missing_ok=True)


def extension_dict(spec: ExtensionSpec) -> dict[str, Any]:
    """An extension as ``DiskState.extensions`` keeps it: without its protected settings."""
    return {"name": spec.name, "publisher": spec.publisher, "type": spec.type,
            "type_handler_version": spec.type_handler_version,
            "settings": dict(spec.settings), "protected_settings": {}}


def inputs_of(specs: tuple[ExtensionSpec, ...], custom_data: str | None) -> Inputs:
    return Inputs(custom_data, {s.name: dict(s.protected_settings) for s in specs
                                if s.protected_settings})


def status_dict(status: ExtensionStatus) -> dict[str, Any]:
    """An extension status as ``DiskState.extension_statuses`` keeps it."""
    return {"name": status.name, "type": status.type, "state": status.state,
            "message": status.message, "type_handler_version": status.type_handler_version}


def _disk(data: dict[str, Any] | None, directory: Path) -> tuple[DiskState | None, bool]:
    """The disk, and whether its record held secrets (an older ``state.json``).

    Those move to the disk's ``Inputs`` file while it still needs them.
    """
    if data is None:
        return None, False
    custom_data = data.pop("custom_data", None)
    protected = {e["name"]: e.get("protected_settings") or {}
                 for e in data.get("extensions", [])}
    protected = {k: v for k, v in protected.items() if v}
    for e in data.get("extensions", []):
        e["protected_settings"] = {}
    disk = DiskState(**data)
    held = bool(custom_data or protected)
    if held and not disk.provisioned:
        save_inputs(directory, disk.disk_id, Inputs(custom_data, protected))
    return disk, held


def load(path: Path) -> InstanceState:
    """Read ``state.json`` (raises ``OSError``/``ValueError`` on a missing or torn file).

    A record written before secrets left ``state.json`` is rewritten without them.
    """
    data = json.loads(path.read_text())
    os_disk, held = _disk(data.pop("os_disk"), path.parent)
    assert os_disk is not None
    previous, held_before = _disk(data.pop("previous"), path.parent)
    ops = {k: OpState(**v) for k, v in data.pop("ops").items()}
    data["data_disks"] = [tuple(d) for d in data["data_disks"]]
    state = InstanceState(os_disk=os_disk, previous=previous, ops=ops, **data)
    if held or held_before:
        save(path, state)
    return state


def save(path: Path, state: InstanceState) -> None:
    """Replace ``state.json`` atomically (0600)."""
    _write(path, asdict(state))


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an older 0644 leftover keeps its mode otherwise
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
