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
from typing import Any, Literal, Protocol

from scaleset.model.instance import (
    ExtensionStatus,
    HealthState,
    PowerAction,
    PowerState,
    ProvisioningState,
)
from scaleset.upgrade.observations import OperationObservation


@dataclass(frozen=True, slots=True)
class DataDiskSpec:
    lun: int
    disk_id: str
    size_gb: int | None = None


@dataclass(frozen=True, slots=True)
class ExtensionSpec:
    """One extension of the model, as a handler on the instance needs it."""

    name: str
    publisher: str
    type: str
    type_handler_version: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    protected_settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A load balancer's health probe, run by the control plane against every instance.

    ``protocol`` Http/Https needs a 200 from ``request_path``; Tcp needs an
    accepted connection. ``number_of_probes`` consecutive failures mark an
    instance down; one success marks it up.
    """

    protocol: Literal["Http", "Https", "Tcp"]
    port: int
    request_path: str | None = None
    interval_seconds: float = 5.0
    number_of_probes: int = 2


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
    extensions: tuple[ExtensionSpec, ...] = ()
    """Extensions in the order they must be provisioned after boot."""
    custom_data: str | None = None
    """``osProfile.customData`` (base64), written to every new OS disk."""
    health_source: bool = True
    """A load-balancer probe or the Application Health extension watches the application.
    Without one, healthy means running with every extension provisioned."""
    image_digest: str | None = None
    """The image version's artifact (``sha256:...``) when it was published with one."""


@dataclass(frozen=True, slots=True)
class UpgradeOperation:
    """Build a new OS disk from ``image_version``, keep the old one, boot, apply the model."""

    op_id: str
    scale_set_id: str
    instance_id: str
    image_version: str | None
    generation: int
    os_disk_id: str
    extensions: tuple[ExtensionSpec, ...] = ()
    """Extensions in the order they must be provisioned after boot."""
    custom_data: str | None = None
    """``osProfile.customData`` (base64), rerun on the new OS disk."""
    health_source: bool = True
    """As for ``InstanceSpec``: whether the application's health is watched."""
    image_digest: str | None = None
    """As for ``InstanceSpec``: the target version's artifact, if any."""
    reset_data_disks: bool = False
    """``reimageall``: the data disks come back empty too (their ids stay)."""


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


@dataclass(frozen=True, slots=True)
class PowerOperation:
    """Carry out a user's power verb on one instance; it succeeds once the instance is in
    ``action.target``.

    * ``powerOff``: stop the instance's processes; disks, address and model stay.
    * ``deallocate``: stop, and release what the instance holds on its host (its
      address); disks stay.
    * ``start``: boot the OS disk the instance has; custom data and extensions do not
      run again (they ran on this disk already).
    * ``restart``: stop, then start.
    * ``redeploy``: stop, then start as on another host: new processes, a new address,
      the same disks.

    Asking for the state an instance is already in succeeds and changes nothing.
    ``skip_shutdown`` (``powerOff?skipShutdown=true``) kills at once instead of
    asking the processes to shut down first.
    """

    op_id: str
    scale_set_id: str
    instance_id: str
    action: PowerAction
    skip_shutdown: bool = False


Operation = UpgradeOperation | RollbackOperation | ReleaseOperation | PowerOperation


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
    private_ip: str | None = None
    extensions: tuple[ExtensionStatus, ...] | None = None
    """Extension provisioning as the instance reports it; ``None``: this driver cannot tell."""


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

    def configure_probe(self, scale_set_id: str, probe: ProbeSpec | None) -> None:
        """The load-balancer probe that now watches the scale set's instances (``None``: none).

        Called by every pass; a no-op when nothing changed.
        """
        ...

    def scale_set_ids(self) -> frozenset[str]:
        """The scale sets this driver has instances of."""
        ...

    def console_log(self, scale_set_id: str, instance_id: str) -> bytes | None:
        """The instance's serial console output (boot diagnostics), ``None`` if unknown."""
        ...


class DriverError(Exception):
    """Base of every driver failure."""


class TransientDriverError(DriverError):
    """The driver could not act now; the pass should be retried after a delay."""
