"""The driver contract: the shell's only way to touch instances.

A driver runs instance operations in the background and reports on them when
observed. Every operation carries an id; submitting an id the driver already
knows does nothing, which is what makes the shell's actions idempotent.

Exceptions: ``DriverError`` is the base; ``TransientDriverError`` means "try
the pass again later", anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from scaleset.model.instance import HealthState, PowerState, ProvisioningState
from scaleset.upgrade.observations import OperationObservation


@dataclass(frozen=True, slots=True)
class DataDiskSpec:
    lun: int
    disk_id: str
    size_gb: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """Everything a driver needs to create an instance."""

    scale_set_id: str
    instance_id: str
    image_version: str | None
    generation: int
    os_disk_id: str
    data_disks: tuple[DataDiskSpec, ...] = ()
    zone: str | None = None
    extensions: tuple[str, ...] = ()
    """Extension names in the order they must be provisioned after boot."""
    custom_data: str | None = None
    """``osProfile.customData`` (base64), written to every new OS disk."""
    health_source: bool = True
    """A load-balancer probe or the Application Health extension watches the application.
    Without one, healthy means running with every extension provisioned."""


@dataclass(frozen=True, slots=True)
class UpgradeOperation:
    """Build a new OS disk from ``image_version``, keep the old one, boot, apply the model."""

    op_id: str
    scale_set_id: str
    instance_id: str
    image_version: str | None
    generation: int
    os_disk_id: str
    extensions: tuple[str, ...] = ()
    """Extension names in the order they must be provisioned after boot."""
    custom_data: str | None = None
    """``osProfile.customData`` (base64), rerun on the new OS disk."""
    health_source: bool = True
    """As for ``InstanceSpec``: whether the application's health is watched."""


@dataclass(frozen=True, slots=True)
class RollbackOperation:
    """Swap the previous OS disk (and model) back in and boot it."""

    op_id: str
    scale_set_id: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class ReleaseOperation:
    """Delete the previous OS disk kept for rollback."""

    scale_set_id: str
    instance_id: str


Operation = UpgradeOperation | RollbackOperation | ReleaseOperation


@dataclass(frozen=True, slots=True)
class DriverInstance:
    """One instance as the driver sees it now."""

    instance_id: str
    image_version: str | None
    generation: int
    os_disk_id: str
    previous_os_disk_id: str | None
    power_state: PowerState
    provisioning_state: ProvisioningState
    health: HealthState
    data_disk_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriverSnapshot:
    instances: Mapping[str, DriverInstance]
    operations: Mapping[str, OperationObservation] = field(default_factory=dict)


class Driver(Protocol):
    def create_instance(self, spec: InstanceSpec) -> None:
        """Create (and boot) an instance; a no-op if it exists."""
        ...

    def delete_instance(self, scale_set_id: str, instance_id: str) -> None:
        """Delete an instance with its OS and data disks; a no-op if it is gone."""
        ...

    def submit(self, operation: Operation) -> None:
        """Start an operation in the background; a no-op for an id already known."""
        ...

    def observe(self, scale_set_id: str, now: datetime) -> DriverSnapshot:
        """The scale set's instances and operations as of ``now``."""
        ...


class DriverError(Exception):
    """Base of every driver failure."""


class TransientDriverError(DriverError):
    """The driver could not act now; the pass should be retried after a delay."""
