"""Scale set instances on the wire (``virtualMachineScaleSets/{name}/virtualMachines/{id}``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from scaleset.model.base import ArmModel
from scaleset.model.scaleset import DataDisk, ImageReference, OSDisk, Sku

VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"


class InstanceViewStatus(ArmModel):
    code: str
    level: Literal["Info", "Warning", "Error"] = "Info"
    display_status: str | None = None
    message: str | None = None
    time: datetime | None = None


class VmHealth(ArmModel):
    status: InstanceViewStatus


class DiskInstanceView(ArmModel):
    name: str
    statuses: list[InstanceViewStatus] = Field(default_factory=list)


class ExtensionInstanceView(ArmModel):
    name: str
    type: str | None = None
    type_handler_version: str | None = None
    statuses: list[InstanceViewStatus] = Field(default_factory=list)


class VMInstanceView(ArmModel):
    platform_update_domain: int | None = None
    platform_fault_domain: int | None = None
    computer_name: str | None = None
    statuses: list[InstanceViewStatus] = Field(default_factory=list)
    vm_health: VmHealth | None = None
    disks: list[DiskInstanceView] = Field(default_factory=list)
    extensions: list[ExtensionInstanceView] | None = None
    private_ip_address: str | None = Field(default=None, alias="privateIPAddress")
    """Not in ARM's instance view (Azure keeps it on the NIC): where the instance answers."""


class ProtectionPolicy(ArmModel):
    protect_from_scale_in: bool = False
    protect_from_scale_set_actions: bool = False


class VMStorageProfile(ArmModel):
    image_reference: ImageReference | None = None
    os_disk: OSDisk | None = None
    data_disks: list[DataDisk] = Field(default_factory=list)


class VMProperties(ArmModel):
    latest_model_applied: bool
    vm_id: str | None = None
    provisioning_state: str
    storage_profile: VMStorageProfile | None = None
    protection_policy: ProtectionPolicy = Field(default_factory=ProtectionPolicy)
    instance_view: VMInstanceView | None = None


class ScaleSetVM(ArmModel):
    """One instance of a scale set, shaped like ARM's ``VirtualMachineScaleSetVM``."""

    id: str | None = None
    name: str | None = None
    type: str = VM_TYPE
    location: str
    instance_id: str
    sku: Sku | None = None
    zones: list[str] = Field(default_factory=list)
    etag: str | None = None
    properties: VMProperties
