"""The scale set resource (``Microsoft.Compute/virtualMachineScaleSets``).

Only the fields scaleset acts on are typed; everything else a client sends is
kept as-is (see :class:`~scaleset.model.base.ArmModel`). Defaults are Azure's.
"""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel
from scaleset.model.durations import Duration
from scaleset.model.extensions import ExtensionKind, kind_of
from scaleset.model.maintenance import MAX_WINDOWS, MaintenanceWindow

UpgradeMode = Literal["Automatic", "Manual", "Rolling"]


class Sku(ArmModel):
    name: str | None = Field(default=None, max_length=limits.MAX_SHORT_STRING)
    tier: str | None = Field(default=None, max_length=limits.MAX_SHORT_STRING)
    capacity: int | None = Field(default=None, ge=0)
    """Its upper bound is the server's (``reconcile/quotas.py``), checked on every write."""

    @field_validator("capacity", mode="before")
    @classmethod
    def _integer(cls, value: Any) -> Any:
        """A boolean or a fractional number is not a capacity (pydantic reads true as 1)."""
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise PydanticCustomError(
                "capacity", "sku.capacity must be a whole number of instances, not {value}",
                {"value": json.dumps(value)})
        return value


class AutomaticOSUpgradePolicy(ArmModel):
    enable_automatic_os_upgrade: bool = Field(default=False, alias="enableAutomaticOSUpgrade")
    disable_automatic_rollback: bool = False
    use_rolling_upgrade_policy: bool = False
    os_rolling_upgrade_deferral: bool = False
    maintenance_windows: list[MaintenanceWindow] | None = Field(default=None,
                                                                max_length=MAX_WINDOWS)
    """scaleset's weekly schedule for automatic runs; None: any time (``model/maintenance.py``)."""


class RollingUpgradePolicy(ArmModel):
    """Batch size, health gates and pacing of a rolling upgrade (Azure's ranges)."""

    max_batch_instance_percent: int = Field(default=20, ge=5, le=100)
    max_unhealthy_instance_percent: int = Field(default=20, ge=5, le=100)
    max_unhealthy_upgraded_instance_percent: int = Field(default=20, ge=0, le=100)
    pause_time_between_batches: Duration = timedelta(0)
    prioritize_unhealthy_instances: bool = False
    enable_cross_zone_upgrade: bool = False
    rollback_failed_instances_on_policy_breach: bool = False
    max_surge: bool = False


class UpgradePolicy(ArmModel):
    mode: UpgradeMode = "Manual"
    automatic_os_upgrade_policy: AutomaticOSUpgradePolicy | None = Field(
        default=None, alias="automaticOSUpgradePolicy"
    )
    rolling_upgrade_policy: RollingUpgradePolicy | None = None


class ImageReference(ArmModel):
    publisher: limits.ShortString = None
    offer: limits.ShortString = None
    sku: limits.ShortString = None
    version: limits.ShortString = None
    id: limits.ShortString = None
    shared_gallery_image_id: limits.ShortString = None
    community_gallery_image_id: limits.ShortString = None
    exact_version: limits.ShortString = None


class OSDisk(ArmModel):
    create_option: str = "FromImage"
    caching: str | None = None
    disk_size_gb: int | None = Field(default=None, alias="diskSizeGB")
    os_type: Literal["Linux", "Windows"] | None = None
    name: str | None = None


class DataDisk(ArmModel):
    lun: int = Field(ge=0)
    create_option: str = "Empty"
    disk_size_gb: int | None = Field(default=None, alias="diskSizeGB")
    caching: str | None = None
    name: str | None = None


class StorageProfile(ArmModel):
    image_reference: ImageReference | None = None
    os_disk: OSDisk | None = None
    data_disks: list[DataDisk] = Field(default_factory=list)

    @field_validator("data_disks", mode="after")
    @classmethod
    def _luns(cls, disks: list[DataDisk]) -> list[DataDisk]:
        """At most 64 data disks, each on its own LUN from 0 to 63 (``model/limits.py``)."""
        problem = limits.luns_problem([d.lun for d in disks])
        if problem is not None:
            raise PydanticCustomError("dataDisks", "{reason}", {"reason": problem})
        return disks


class WindowsConfiguration(ArmModel):
    provision_vm_agent: bool | None = Field(default=None, alias="provisionVMAgent")
    enable_automatic_updates: bool | None = None
    time_zone: str | None = None


class LinuxConfiguration(ArmModel):
    disable_password_authentication: bool | None = None
    provision_vm_agent: bool | None = Field(default=None, alias="provisionVMAgent")


class OSProfile(ArmModel):
    computer_name_prefix: str | None = None
    """Its length depends on the OS: checked by ``VirtualMachineProfile``."""
    admin_username: str | None = Field(default=None, max_length=limits.MAX_ADMIN_USERNAME)
    admin_password: str | None = Field(default=None, max_length=limits.MAX_ADMIN_PASSWORD)
    custom_data: str | None = None
    windows_configuration: WindowsConfiguration | None = None
    linux_configuration: LinuxConfiguration | None = None


class ApiEntityReference(ArmModel):
    id: str


# Booleans of the network interface configurations, which are otherwise kept as sent.
# ARM templates often write them as strings (az vmss create's has "primary": "true"); the
# Compute RP reads them as booleans and GET shows true, so a later read-modify-write of
# the GET body must not look like a change.
_NIC_BOOLEANS = frozenset({"primary", "enableAcceleratedNetworking", "enableIPForwarding",
                           "enableFpga", "disableTcpStateTracking"})
_IP_CONFIG_BOOLEANS = frozenset({"primary"})


def _booleans(properties: Any, names: frozenset[str]) -> Any:
    if not isinstance(properties, dict):
        return properties
    return {k: (v.lower() == "true" if k in names and isinstance(v, str)
                and v.lower() in ("true", "false") else v) for k, v in properties.items()}


class NetworkProfile(ArmModel):
    health_probe: ApiEntityReference | None = None
    network_interface_configurations: list[dict[str, Any]] | None = Field(
        default=None, max_length=limits.MAX_NICS)

    @field_validator("network_interface_configurations")
    @classmethod
    def _typed_booleans(cls, configs: list[dict[str, Any]] | None
                        ) -> list[dict[str, Any]] | None:
        """"true"/"false" strings in the known boolean fields become booleans."""
        if configs is None:
            return None
        out = []
        for config in configs:
            props = _booleans(config.get("properties"), _NIC_BOOLEANS)
            if isinstance(props, dict) and isinstance(props.get("ipConfigurations"), list):
                props["ipConfigurations"] = [
                    {**ip, "properties": _booleans(ip.get("properties"), _IP_CONFIG_BOOLEANS)}
                    if isinstance(ip, dict) and "properties" in ip else ip
                    for ip in props["ipConfigurations"]]
            out.append({**config, "properties": props} if "properties" in config else config)
        return out


class ExtensionProperties(ArmModel):
    publisher: str
    type: str
    type_handler_version: str | None = None
    auto_upgrade_minor_version: bool | None = None
    enable_automatic_upgrade: bool | None = None
    settings: dict[str, Any] | None = None
    protected_settings: dict[str, Any] | None = None
    provision_after_extensions: list[str] = Field(default_factory=list)
    force_update_tag: str | None = None
    suppress_failures: bool | None = None
    provisioning_state: str | None = None


class Extension(ArmModel):
    name: Annotated[str, limits.named("Microsoft.Compute/virtualMachineScaleSets/extensions")]
    properties: ExtensionProperties

    @property
    def kind(self) -> ExtensionKind:
        """What this extension is, by publisher and type (``model/extensions.py``)."""
        return kind_of(self.properties.publisher, self.properties.type)


class ExtensionProfile(ArmModel):
    extensions: list[Extension] = Field(default_factory=list, max_length=limits.MAX_EXTENSIONS)
    extensions_time_budget: Duration | None = None


class VirtualMachineProfile(ArmModel):
    os_profile: OSProfile | None = None
    storage_profile: StorageProfile = Field(default_factory=StorageProfile)
    network_profile: NetworkProfile | None = None
    extension_profile: ExtensionProfile | None = None

    @model_validator(mode="after")
    def _computer_name_prefix(self) -> VirtualMachineProfile:
        """``computerNamePrefix`` within its OS's length (Windows 9, Linux 58)."""
        prefix = self.os_profile.computer_name_prefix if self.os_profile else None
        if prefix is None:
            return self
        os_disk = self.storage_profile.os_disk
        windows = (self.os_profile is not None
                   and self.os_profile.windows_configuration is not None) or (
            os_disk is not None and os_disk.os_type == "Windows")
        problem = limits.computer_name_prefix_problem(prefix, windows)
        if problem is not None:
            raise PydanticCustomError("computerNamePrefix", "{reason}", {"reason": problem})
        return self


class ScaleSetProperties(ArmModel):
    upgrade_policy: UpgradePolicy = Field(default_factory=UpgradePolicy)
    virtual_machine_profile: VirtualMachineProfile = Field(default_factory=VirtualMachineProfile)
    provisioning_state: str | None = None
    unique_id: str | None = None
    time_created: str | None = None
    overprovision: bool | None = None
    single_placement_group: bool | None = None
    platform_fault_domain_count: int | None = None
    orchestration_mode: str | None = None


class ScaleSet(ArmModel):
    """A ``Microsoft.Compute/virtualMachineScaleSets`` resource."""

    id: str | None = None
    name: str | None = None
    type: str | None = "Microsoft.Compute/virtualMachineScaleSets"
    location: str
    zones: list[str] = Field(default_factory=list)
    sku: Sku = Field(default_factory=Sku)
    tags: limits.Tags = None
    etag: str | None = None
    properties: ScaleSetProperties = Field(default_factory=ScaleSetProperties)

    @property
    def capacity(self) -> int:
        return self.sku.capacity or 0

    @property
    def image_reference(self) -> ImageReference:
        profile = self.properties.virtual_machine_profile.storage_profile
        return profile.image_reference or ImageReference()

    @property
    def automatic_os_upgrade(self) -> AutomaticOSUpgradePolicy:
        return (
            self.properties.upgrade_policy.automatic_os_upgrade_policy
            or AutomaticOSUpgradePolicy()
        )

    @property
    def rolling_upgrade_policy(self) -> RollingUpgradePolicy:
        """The policy that paces runs: the one written on the model, else Azure's defaults."""
        return self.properties.upgrade_policy.rolling_upgrade_policy or RollingUpgradePolicy()

    @property
    def extensions(self) -> list[Extension]:
        profile = self.properties.virtual_machine_profile.extension_profile
        return list(profile.extensions) if profile else []

    @property
    def service_fabric_extension(self) -> Extension | None:
        """The Service Fabric node extension, if this scale set is a Service Fabric node type."""
        return next((e for e in self.extensions if e.kind is ExtensionKind.SERVICE_FABRIC),
                    None)

    @property
    def health_extension(self) -> Extension | None:
        """The Application Health extension, if the model has one."""
        return next((e for e in self.extensions
                     if e.kind is ExtensionKind.APPLICATION_HEALTH), None)

    @property
    def health_probe_id(self) -> str | None:
        """The load balancer probe that tells instance health, if one is set."""
        network = self.properties.virtual_machine_profile.network_profile
        probe = network.health_probe if network is not None else None
        return probe.id if probe is not None else None

    @property
    def data_disks(self) -> list[DataDisk]:
        return list(self.properties.virtual_machine_profile.storage_profile.data_disks)
