"""Scale set instances: the vocabulary every layer shares, and the control plane's record.

``InstanceRecord`` is what the store keeps for one member of a scale set. The
wire shape (``virtualMachines/{id}``) is built from it by the API layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum


class HealthState(StrEnum):
    """What a health source says about an instance."""

    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    UNKNOWN = "Unknown"
    INITIALIZING = "Initializing"


class PowerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DEALLOCATED = "deallocated"


class ProvisioningState(StrEnum):
    CREATING = "Creating"
    UPDATING = "Updating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETING = "Deleting"


@dataclass(frozen=True, slots=True)
class DataDiskRecord:
    """A data disk: it belongs to the instance and survives reimage and rollback."""

    lun: int
    disk_id: str
    size_gb: int | None = None


@dataclass(frozen=True, slots=True)
class ExtensionStatus:
    """How one extension's provisioning went on an instance's current OS disk."""

    name: str
    type: str
    state: str
    """Creating, Succeeded or Failed."""
    message: str | None = None
    type_handler_version: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One member of a scale set as the control plane records it."""

    scale_set_id: str
    instance_id: str
    zone: str | None
    fault_domain: int
    update_domain: int
    model_generation: int
    image_version: str | None
    os_disk_id: str
    previous_os_disk_id: str | None = None
    previous_image_version: str | None = None
    previous_model_generation: int | None = None
    data_disks: tuple[DataDiskRecord, ...] = field(default_factory=tuple)
    power_state: PowerState = PowerState.RUNNING
    provisioning_state: ProvisioningState = ProvisioningState.SUCCEEDED
    health_state: HealthState = HealthState.UNKNOWN
    protect_from_scale_in: bool = False
    protect_from_scale_set_actions: bool = False
    private_ip: str | None = None
    """The instance's private address, as its driver assigned it."""
    extensions: tuple[ExtensionStatus, ...] | None = None
    """Extension provisioning on the current OS disk; ``None`` when the driver reports none."""

    def latest_model_applied(self, generation: int) -> bool:
        """Whether this instance runs the scale set's current model generation."""
        return self.model_generation >= generation

    def replace(self, **changes: object) -> InstanceRecord:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
