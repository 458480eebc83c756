"""The scenario file of ``scaleset simulate`` (JSON, camelCase like ARM).

Every field may be omitted::

    {
      "scaleSet": {"location": "westus", "sku": {"capacity": 10}, "properties": {...}},
      "seed": 7,
      "startedBy": "Platform",
      "healthTimeout": "PT5M",
      "timings": {"reimageSeconds": 60, "bootSeconds": 30, "healthySeconds": 20},
      "faults": {"neverHealthyProbability": 0.0, "reimageFailProbability": 0.0,
                 "unhealthyAtStart": ["3"], "events": [{"at": "PT10M", "instances": ["5"],
                 "health": "Unhealthy"}]},
      "rolloutTiming": {"preset": "azure", "rolloutDelay": "PT10M"}
    }

Without ``rolloutTiming`` the run starts the moment the target is published.
With it (Platform runs only) the scale set has automatic OS upgrade and the
platform's trigger starts the run when it is due, with the delays of
``scaleset serve --rollout-timing`` and its three flags.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from scaleset.drivers.simulated import Faults, HealthEvent, Timings
from scaleset.model.base import ArmModel
from scaleset.model.durations import Duration
from scaleset.model.extensions import ExtensionKind, kind_of
from scaleset.model import fields
from scaleset.model.instance import HealthState
from scaleset.model.scaleset import ScaleSet
from scaleset.upgrade.state import DEFAULT_HEALTH_TIMEOUT
from scaleset.upgrade.timing import PRESETS, RolloutTiming

DEFAULT_INSTANCES = 10
DEFAULT_PROBE = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sim/"
                 "providers/Microsoft.Network/loadBalancers/sim-lb/probes/health")


def _has_health_extension(profile: dict[str, Any]) -> bool:
    extensions = (profile.get("extensionProfile") or {}).get("extensions") or []
    return any(kind_of((e.get("properties") or {}).get("publisher"),
                       (e.get("properties") or {}).get("type"))
               is ExtensionKind.APPLICATION_HEALTH for e in extensions if isinstance(e, dict))
DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
                 "version": "latest"}


class _Strict(ArmModel):
    # A typo in a scenario must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class TimingsSpec(_Strict):
    reimage_seconds: float = Field(default=60, ge=0)
    boot_seconds: float = Field(default=30, ge=0)
    healthy_seconds: float = Field(default=20, ge=0)

    def to_timings(self) -> Timings:
        return Timings(timedelta(seconds=self.reimage_seconds),
                       timedelta(seconds=self.boot_seconds),
                       timedelta(seconds=self.healthy_seconds))


class HealthEventSpec(_Strict):
    at: Duration
    instances: list[str]
    health: Literal["Healthy", "Unhealthy"] = "Unhealthy"


Probability = float


class FaultsSpec(_Strict):
    never_healthy_probability: Probability = Field(default=0.0, ge=0, le=1)
    reimage_fail_probability: Probability = Field(default=0.0, ge=0, le=1)
    late_healthy_probability: Probability = Field(default=0.0, ge=0, le=1)
    late_by_seconds: float = Field(default=600, ge=0)
    flap_probability: Probability = Field(default=0.0, ge=0, le=1)
    flap_period_seconds: float = Field(default=90, gt=0)
    extension_fail_probability: Probability = Field(default=0.0, ge=0, le=1)
    rollback_fail_probability: Probability = Field(default=0.0, ge=0, le=1)
    bad_image: bool = False
    unhealthy_at_start: list[str] = Field(default_factory=list)
    events: list[HealthEventSpec] = Field(default_factory=list)

    def to_faults(self) -> Faults:
        return Faults(
            reimage_fail_probability=self.reimage_fail_probability,
            never_healthy_probability=self.never_healthy_probability,
            late_healthy_probability=self.late_healthy_probability,
            late_by=timedelta(seconds=self.late_by_seconds),
            flap_probability=self.flap_probability,
            flap_period=timedelta(seconds=self.flap_period_seconds),
            extension_fail_probability=self.extension_fail_probability,
            rollback_fail_probability=self.rollback_fail_probability,
            unhealthy_at_start=tuple(self.unhealthy_at_start),
            events=tuple(HealthEvent(e.at, tuple(e.instances), HealthState(e.health))
                         for e in self.events),
        )


class RolloutTimingSpec(_Strict):
    """When the platform starts the run: a preset, then explicit delays laid over it."""

    preset: Literal["immediate", "azure"] = "immediate"
    first_rollout_delay: Duration | None = None
    rollout_delay: Duration | None = None
    rollout_jitter: Duration | None = None

    def to_timing(self) -> RolloutTiming:
        base = PRESETS[self.preset]
        return RolloutTiming(
            first_rollout_delay=self.first_rollout_delay if self.first_rollout_delay
            is not None else base.first_rollout_delay,
            rollout_delay=self.rollout_delay if self.rollout_delay is not None
            else base.rollout_delay,
            rollout_jitter=self.rollout_jitter if self.rollout_jitter is not None
            else base.rollout_jitter)


class Scenario(_Strict):
    scale_set: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    started_by: Literal["Platform", "User"] = "Platform"
    health_timeout: Duration = DEFAULT_HEALTH_TIMEOUT
    from_version: str = "1.0.0"
    target_version: str = "1.1.0"
    timings: TimingsSpec = Field(default_factory=TimingsSpec)
    faults: FaultsSpec = Field(default_factory=FaultsSpec)
    rollout_timing: RolloutTimingSpec | None = None
    """The platform's trigger starts the run, with these delays (None: at once)."""

    @model_validator(mode="after")
    def _platform_for_timing(self) -> Scenario:
        if self.rollout_timing is not None and self.started_by != "Platform":
            raise ValueError("rolloutTiming paces runs the platform starts; use startedBy "
                             "'Platform' or drop rolloutTiming")
        return self

    @field_validator("scale_set")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The scale set is ARM JSON, whose models keep unknown keys for clients; a
        # scenario is written by hand, so a misspelt key is refused, not ignored.
        unknown = fields.unknown_keys(ScaleSet, value, "scaleSet")
        if unknown:
            raise ValueError("; ".join(u.message() for u in unknown))
        return value

    @field_validator("health_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("healthTimeout must be longer than zero, e.g. 'PT5M'")
        return value

    def build_scale_set(self, *, name: str = "vmss-sim") -> ScaleSet:
        """The scenario's scale set with the simulator's defaults filled in."""
        raw = dict(self.scale_set)
        raw.setdefault("name", name)
        raw.setdefault("location", "westus")
        sku = dict(raw.get("sku") or {})
        sku.setdefault("capacity", DEFAULT_INSTANCES)
        raw["sku"] = sku
        props = dict(raw.get("properties") or {})
        profile = dict(props.get("virtualMachineProfile") or {})
        storage = dict(profile.get("storageProfile") or {})
        storage.setdefault("imageReference", dict(DEFAULT_IMAGE))
        profile["storageProfile"] = storage
        # The simulated set is watched by a load-balancer probe unless the scenario
        # configures health itself (a probe, the health extension, or "healthProbe": null).
        network = dict(profile.get("networkProfile") or {})
        if "healthProbe" not in network and not _has_health_extension(profile):
            network["healthProbe"] = {"id": DEFAULT_PROBE}
        profile["networkProfile"] = network
        props["virtualMachineProfile"] = profile
        if self.rollout_timing is not None:  # the platform starts the run: automatic upgrade
            upgrade = dict(props.get("upgradePolicy") or {})
            automatic = dict(upgrade.get("automaticOSUpgradePolicy") or {})
            automatic["enableAutomaticOSUpgrade"] = True
            upgrade["automaticOSUpgradePolicy"] = automatic
            props["upgradePolicy"] = upgrade
        raw["properties"] = props
        return ScaleSet.model_validate(raw)
