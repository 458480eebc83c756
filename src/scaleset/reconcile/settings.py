"""Settings of the shell, with a default on every field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scaleset.catalog.auto_upgrade import DEFAULT_IMAGES, PlatformImage
from scaleset.upgrade.state import DEFAULT_HEALTH_TIMEOUT
from scaleset.upgrade.timing import NO_DELAY, RolloutTiming


@dataclass(frozen=True, slots=True)
class ShellSettings:
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT
    """How long an upgraded instance has to become healthy (Azure: 5 minutes)."""

    update_domains: int = 5
    """Update domains instances are spread over (Azure's default for scale sets)."""

    fault_domains: int = 5
    """Fault domains when the model does not set ``platformFaultDomainCount``."""

    rollout_timing: RolloutTiming = NO_DELAY
    """Delays before automatic OS upgrade runs (``upgrade/timing.py``); default: none."""

    auto_upgrade_images: tuple[PlatformImage, ...] = DEFAULT_IMAGES
    """Platform images a scale set may upgrade automatically (the seed's table by default;
    ``serve --auto-upgrade-image`` adds, ``--auto-upgrade-images`` replaces)."""
