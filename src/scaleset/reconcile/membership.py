"""Which instances a scale set should have, where they go, and what they are called.

Pure functions over the scale set and its instance records: the shell turns
their answers into store writes and driver calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scaleset.drivers.base import DataDiskSpec, ExtensionSpec, InstanceSpec
from scaleset.model import sequencing
from scaleset.model.instance import DataDiskRecord, HealthState, InstanceRecord
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile.settings import ShellSettings


def _natural(instance_id: str) -> tuple[int, str]:
    return (int(instance_id), "") if instance_id.isdigit() else (1 << 62, instance_id)


def os_disk_id(name: str, instance_id: str, salt: str) -> str:
    """A deterministic OS disk name: the same operation always names the same disk."""
    digest = hashlib.sha1(salt.encode()).hexdigest()[:12]
    return f"{name}_{instance_id}_OsDisk_{digest}"


def new_instance(
    *,
    scale_set_id: str,
    name: str,
    model: ScaleSet,
    index: int,
    generation: int,
    image_version: str | None,
    settings: ShellSettings,
) -> InstanceRecord:
    """The record of instance number ``index``: zone round-robin, then update/fault domains."""
    instance_id = str(index)
    zone = model.zones[index % len(model.zones)] if model.zones else None
    fault_domains = model.properties.platform_fault_domain_count or settings.fault_domains
    per_zone_index = index // len(model.zones) if model.zones else index
    return InstanceRecord(
        scale_set_id=scale_set_id,
        instance_id=instance_id,
        zone=zone,
        fault_domain=per_zone_index % max(1, fault_domains),
        update_domain=per_zone_index % max(1, settings.update_domains),
        model_generation=generation,
        image_version=image_version,
        os_disk_id=os_disk_id(name, instance_id, f"create/{image_version}/{generation}"),
        data_disks=tuple(
            DataDiskRecord(d.lun, f"{name}_{instance_id}_disk{d.lun}", d.disk_size_gb)
            for d in sorted(model.data_disks, key=lambda d: d.lun)
        ),
        health_state=HealthState.UNKNOWN,
    )


def scale_in_victims(records: Mapping[str, InstanceRecord], count: int,
                     busy: frozenset[str] = frozenset()) -> list[str]:
    """Which ``count`` instances to remove: never ones protected from scale-in,
    preferably not ones a run is working on, highest instance id first."""
    if count <= 0:
        return []
    candidates = [r for r in records.values() if not r.protect_from_scale_in]
    candidates.sort(key=lambda r: (r.instance_id not in busy, _natural(r.instance_id)),
                    reverse=True)
    return [r.instance_id for r in candidates[:count]]


def has_health_source(model: ScaleSet) -> bool:
    """A load-balancer health probe, the Application Health extension, or the Service Fabric
    extension (its node reports its own health) is configured."""
    return (model.health_probe_id is not None or model.health_extension is not None
            or model.service_fabric_extension is not None)


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What every new OS disk gets."""

    extensions: tuple[ExtensionSpec, ...]
    custom_data: str | None
    health_source: bool


def provisioning(model: ScaleSet) -> Provisioning:
    """The extensions in sequence, the custom data, and whether health is probed."""
    os_profile = model.properties.virtual_machine_profile.os_profile
    by_name = {e.name: e for e in model.extensions}
    specs = tuple(
        ExtensionSpec(name=e.name, publisher=e.properties.publisher, type=e.properties.type,
                      type_handler_version=e.properties.type_handler_version,
                      settings=dict(e.properties.settings or {}),
                      protected_settings=dict(e.properties.protected_settings or {}))
        for e in (by_name[name] for name in sequencing.extension_order(model.extensions)))
    return Provisioning(specs, os_profile.custom_data if os_profile else None,
                        has_health_source(model))


def spec_for(record: InstanceRecord, model: ScaleSet, *,
             image_digest: str | None = None) -> InstanceSpec:
    p = provisioning(model)
    return InstanceSpec(
        scale_set_id=record.scale_set_id,
        instance_id=record.instance_id,
        image_version=record.image_version,
        generation=record.model_generation,
        os_disk_id=record.os_disk_id,
        data_disks=tuple(DataDiskSpec(d.lun, d.disk_id, d.size_gb) for d in record.data_disks),
        zone=record.zone,
        extensions=p.extensions,
        custom_data=p.custom_data,
        health_source=p.health_source,
        image_digest=image_digest,
    )


def ordered(records: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    return sorted(records, key=lambda r: _natural(r.instance_id))
