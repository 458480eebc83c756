"""Read-only views over the store in ARM's shapes (what API and CLI show)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from scaleset.errors import NotFound
from scaleset.model.instance import ExtensionStatus, HealthState, InstanceRecord
from scaleset.model.vm import (
    DiskInstanceView,
    ExtensionInstanceView,
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
from scaleset.store.repository import NotFoundError, ScaleSetRow, Store
from scaleset.upgrade import rollout as rollout_view
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
        # Reimages are not rolling upgrades: they do not show here.
        summaries = [s for s in tx.run_summaries(scale_set_id, limit=20)
                     if s.run.kind is not RunKind.REIMAGE][:1]
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


def _extension_status(e: ExtensionStatus) -> InstanceViewStatus:
    level: Literal["Info", "Warning", "Error"] = (
        "Error" if e.state == "Failed" else "Info")
    return InstanceViewStatus(code=f"ProvisioningState/{e.state.lower()}", level=level,
                              display_status=f"Provisioning {e.state.lower()}",
                              message=e.message)


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
                                   display_status=record.power_state.display_status),
            ],
            vm_health=VmHealth(status=_health_status(record.health_state)),
            disks=[DiskInstanceView(name=record.os_disk_id)]
            + [DiskInstanceView(name=d.disk_id) for d in record.data_disks],
            extensions=None if record.extensions is None else [
                ExtensionInstanceView(name=e.name, type=e.type,
                                      type_handler_version=e.type_handler_version,
                                      statuses=[_extension_status(e)])
                for e in record.extensions],
            private_ip_address=record.private_ip,
        )
    fingerprint = "/".join(str(v) for v in (
        record.image_version, record.model_generation, record.os_disk_id,
        record.protect_from_scale_in, record.protect_from_scale_set_actions,
        record.provisioning_state.value, row.generation))
    return ScaleSetVM(
        id=f"{row.model.id or row.id}/virtualMachines/{record.instance_id}",
        etag='"' + hashlib.sha1(fingerprint.encode()).hexdigest()[:16] + '"',
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


SECRET_OS_PROFILE_FIELDS = ("adminPassword", "customData")
SECRET_EXTENSION_FIELDS = ("protectedSettings", "protectedSettingsFromKeyVault")


def scrub_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without what ARM never returns: passwords, custom data, protected settings."""
    profile = body.get("properties", {}).get("virtualMachineProfile", {})
    os_profile = profile.get("osProfile")
    if isinstance(os_profile, dict):
        for key in SECRET_OS_PROFILE_FIELDS:
            os_profile.pop(key, None)
    for ext in (profile.get("extensionProfile") or {}).get("extensions") or []:
        props = ext.get("properties") if isinstance(ext, dict) else None
        if isinstance(props, dict):
            for key in SECRET_EXTENSION_FIELDS:
                props.pop(key, None)
    return body


def scale_set_resource(row: ScaleSetRow, *, provisioning_state: str | None = None
                       ) -> dict[str, Any]:
    """A scale set as ARM returns it: read-only fields filled in, secrets removed."""
    body = row.model.to_wire()
    body["id"] = row.model.id or row.id
    body["name"] = row.name
    body["type"] = "Microsoft.Compute/virtualMachineScaleSets"
    body["etag"] = row.etag
    props = body.setdefault("properties", {})
    props["provisioningState"] = provisioning_state or row.model.properties.provisioning_state \
        or "Succeeded"
    props["uniqueId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, row.id))
    props["timeCreated"] = row.created_at.isoformat().replace("+00:00", "Z")
    ref = props.setdefault("virtualMachineProfile", {}).setdefault(
        "storageProfile", {}).get("imageReference")
    if isinstance(ref, dict) and row.image_version is not None:
        ref["exactVersion"] = row.image_version
    return scrub_secrets(body)


def scale_set_instance_view(row: ScaleSetRow, records: Mapping[str, InstanceRecord]
                            ) -> dict[str, Any]:
    """``virtualMachineScaleSets/{name}/instanceView``: counts of instance states."""
    def summary(codes: list[str]) -> list[dict[str, Any]]:
        return [{"code": c, "count": codes.count(c)} for c in sorted(set(codes))]

    provisioning = [f"ProvisioningState/{r.provisioning_state.value.lower()}"
                    for r in records.values()]
    health = [f"HealthState/{r.health_state.value.lower()}" for r in records.values()]
    power = [f"PowerState/{r.power_state.value}" for r in records.values()]
    state = row.model.properties.provisioning_state or "Succeeded"
    return {
        # As Azure counts them: provisioning states, then power states (PowerState/stopped...).
        "virtualMachine": {"statusesSummary": summary(provisioning) + summary(power)},
        "extensions": [{"name": e.name, "statusesSummary": summary(provisioning)}
                       for e in row.model.extensions],
        "statuses": [{"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                      "displayStatus": f"Provisioning {state.lower()}",
                      "time": row.updated_at.isoformat().replace("+00:00", "Z")}],
        "healthSummary": summary(health),
        "powerStateSummary": summary(power),
        "orchestrationServices": [],
    }


def rollout(store: Store, *, scale_set_id: str, now: datetime, run_id: str | None = None
            ) -> dict[str, Any]:
    """The live view of a scale set's latest rolling upgrade (or of ``run_id``): the scale
    set, the run with its batches and gates, and every instance's state in it."""
    with store.transaction() as tx:
        row = tx.get_scale_set(scale_set_id)
        if row is None:
            raise NotFound(f"scale set '{scale_set_id.rsplit('/', 1)[-1]}' was not found")
        records = tx.instances(scale_set_id)
        run = None
        if run_id is not None:
            try:
                run = tx.get_run(run_id)
            except NotFoundError:
                run = None
            if run is None or run.scale_set_id != scale_set_id:
                raise NotFound(f"scale set '{row.name}' has no run '{run_id}'")
        else:
            latest = [s for s in tx.run_summaries(scale_set_id, limit=20)
                      if s.run.kind is not RunKind.REIMAGE][:1]
            run = tx.get_run(latest[0].run.run_id) if latest else None
    body = scale_set_resource(row)
    props = body.get("properties") or {}
    policy = props.get("upgradePolicy") or {}
    capacity = int((body.get("sku") or {}).get("capacity") or len(records))
    automatic = (policy.get("automaticOSUpgradePolicy") or {}).get("enableAutomaticOSUpgrade")
    return {
        "now": rollout_view.iso(now),
        "scaleSet": {
            "id": body["id"], "name": row.name, "location": row.location,
            "resourceGroup": body["id"].split("/")[4] if body["id"].count("/") >= 4 else None,
            "capacity": capacity,
            "imageReference": ((props.get("virtualMachineProfile") or {})
                               .get("storageProfile") or {}).get("imageReference"),
            "upgradeMode": policy.get("mode"),
            "automaticOSUpgrade": bool(automatic),
            "rollingUpgradePolicy": policy.get("rollingUpgradePolicy"),
        },
        "run": None if run is None else rollout_view.run_view(run, records, capacity=capacity),
        "instances": rollout_view.instances_view(run, records, now),
    }
