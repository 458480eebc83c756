"""Read-only views over the store in ARM's shapes (what API and CLI show)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from scaleset.errors import NotFound
from scaleset.model.instance import HealthState, InstanceRecord
from scaleset.model.vm import (
    DiskInstanceView,
    InstanceViewStatus,
    ProtectionPolicy,
    ScaleSetVM,
    VmHealth,
    VMInstanceView,
    VMProperties,
    VMStorageProfile,
)
from scaleset.model.scaleset import DataDisk, OSDisk
from scaleset.model.upgrade import HistoricalStatus, RollingUpgradeStatusInfo
from scaleset.store.repository import ScaleSetRow, Store
from scaleset.upgrade import status
from scaleset.upgrade.state import RunKind


def os_upgrade_history(store: Store, *, scale_set_id: str, now: datetime
                       ) -> list[HistoricalStatus]:
    """The last five OS upgrade attempts of the past two months, newest first."""
    with store.transaction() as tx:
        row = tx.get_scale_set(scale_set_id)
        if row is None:
            raise NotFound(f"scale set '{scale_set_id.rsplit('/', 1)[-1]}' was not found")
        summaries = tx.run_summaries(scale_set_id, kind=RunKind.OS_IMAGE,
                                     since=now - status.HISTORY_WINDOW,
                                     limit=status.HISTORY_LIMIT)
    return [status.history_item(s.run, s.progress, location=row.location,
                                target_image_reference=s.target_image_reference)
            for s in summaries]


def latest_rolling_upgrade(store: Store, *, scale_set_id: str) -> RollingUpgradeStatusInfo:
    """The newest run of any kind, as ``rollingUpgrades/latest``."""
    with store.transaction() as tx:
        row = tx.get_scale_set(scale_set_id)
        if row is None:
            raise NotFound(f"scale set '{scale_set_id.rsplit('/', 1)[-1]}' was not found")
        summaries = tx.run_summaries(scale_set_id, limit=1)
    if not summaries:
        raise NotFound(
            f"The entity was not found: scale set '{row.name}' has had no rolling upgrade.",
            code="NotFound")
    s = summaries[0]
    return status.latest_status(s.run, s.progress, location=row.location, resource_id=row.id,
                                policy=row.model.rolling_upgrade_policy)


def _health_status(health: HealthState) -> InstanceViewStatus:
    level: Literal["Info", "Warning", "Error"] = (
        "Info" if health is HealthState.HEALTHY else
        "Error" if health is HealthState.UNHEALTHY else "Warning")
    return InstanceViewStatus(code=f"HealthState/{health.value.lower()}", level=level,
                              display_status=f"The VM is {health.value.lower()}")


def instance_resource(row: ScaleSetRow, record: InstanceRecord, *,
                      expand_instance_view: bool = False) -> ScaleSetVM:
    """An instance as ARM's ``VirtualMachineScaleSetVM``."""
    ref = row.model.image_reference.model_copy(
        update={"exact_version": record.image_version})
    view = None
    if expand_instance_view:
        view = VMInstanceView(
            platform_update_domain=record.update_domain,
            platform_fault_domain=record.fault_domain,
            computer_name=f"{row.name}{int(record.instance_id):06d}"
            if record.instance_id.isdigit() else record.instance_id,
            statuses=[
                InstanceViewStatus(
                    code=f"ProvisioningState/{record.provisioning_state.value.lower()}",
                    level="Error" if record.provisioning_state.value == "Failed" else "Info",
                    display_status=f"Provisioning {record.provisioning_state.value.lower()}"),
                InstanceViewStatus(code=f"PowerState/{record.power_state.value}",
                                   display_status=f"VM {record.power_state.value}"),
            ],
            vm_health=VmHealth(status=_health_status(record.health_state)),
            disks=[DiskInstanceView(name=record.os_disk_id)]
            + [DiskInstanceView(name=d.disk_id) for d in record.data_disks],
        )
    return ScaleSetVM(
        id=f"{row.id}/virtualMachines/{record.instance_id}",
        name=f"{row.name}_{record.instance_id}",
        location=row.location,
        instance_id=record.instance_id,
        sku=row.model.sku.model_copy(update={"capacity": None}),
        zones=[record.zone] if record.zone else [],
        properties=VMProperties(
            latest_model_applied=record.latest_model_applied(row.generation),
            provisioning_state=record.provisioning_state.value,
            storage_profile=VMStorageProfile(
                image_reference=ref,
                os_disk=OSDisk(name=record.os_disk_id, create_option="FromImage"),
                data_disks=[DataDisk(lun=d.lun, name=d.disk_id, disk_size_gb=d.size_gb,
                                     create_option="Empty") for d in record.data_disks],
            ),
            protection_policy=ProtectionPolicy(
                protect_from_scale_in=record.protect_from_scale_in,
                protect_from_scale_set_actions=record.protect_from_scale_set_actions),
            instance_view=view,
        ),
    )
