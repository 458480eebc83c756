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
    """An instance's power state, spelt as Azure's ``PowerState/...`` status codes."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DEALLOCATING = "deallocating"
    DEALLOCATED = "deallocated"

    @property
    def display_status(self) -> str:
        """What Azure's instance view shows for it: ``VM running``, ``VM deallocated``..."""
        return f"VM {self.value}"


class PowerAction(StrEnum):
    """A power verb a user asks of an instance (the path segment of its POST)."""

    START = "start"
    POWER_OFF = "powerOff"
    RESTART = "restart"
    DEALLOCATE = "deallocate"
    REDEPLOY = "redeploy"

    @property
    def target(self) -> PowerState:
        """The power state the instance is in once the verb has been carried out."""
        if self is PowerAction.POWER_OFF:
            return PowerState.STOPPED
        if self is PowerAction.DEALLOCATE:
            return PowerState.DEALLOCATED
        return PowerState.RUNNING

    def reached(self, state: PowerState) -> bool:
        """Whether an instance in ``state`` is where this verb leaves it (powerOff leaves a
        deallocated instance deallocated: it is off already)."""
        if self is PowerAction.POWER_OFF:
            return state in (PowerState.STOPPED, PowerState.DEALLOCATED)
        return state is self.target


POWER_SUCCEEDED = "Succeeded"
POWER_FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class PowerRequest:
    """The latest power verb asked of an instance and, once the driver is done, how it went.

    It stays on the record after it ends (until the next verb replaces it), so the
    operation that asked for it can tell success, failure and preemption apart.
    """

    op_id: str
    action: PowerAction
    skip_shutdown: bool = False
    outcome: str | None = None
    """None while the driver works on it; then ``Succeeded`` or ``Failed``."""
    message: str | None = None

    @property
    def pending(self) -> bool:
        return self.outcome is None


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
    power_request: PowerRequest | None = None
    """The user's latest power verb (start, powerOff, restart, deallocate, redeploy)."""
    reset_data_disks_run: str | None = None
    """A ``reimageall`` run whose new OS disk for this instance also empties its data disks."""

    def latest_model_applied(self, generation: int) -> bool:
        """Whether this instance runs the scale set's current model generation."""
        return self.model_generation >= generation

    def replace(self, **changes: object) -> InstanceRecord:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
