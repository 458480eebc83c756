"""Rolling-upgrade status on the wire: ``rollingUpgrades/latest`` and ``osUpgradeHistory``.

The seed's history sample calls the end of a run ``completedTime``; today's
ARM spec and SDK read ``endTime``, which is what scaleset writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from scaleset.model.base import ArmModel
from scaleset.model.scaleset import ImageReference, RollingUpgradePolicy

RunningStatusCode = Literal["RollingForward", "RollingBack", "Cancelled", "Completed", "Faulted"]
StartedBy = Literal["Unknown", "User", "Platform"]

ROLLING_UPGRADES_TYPE = "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"


class ApiErrorBase(ArmModel):
    code: str | None = None
    target: str | None = None
    message: str | None = None


class ApiError(ArmModel):
    code: str | None = None
    target: str | None = None
    message: str | None = None
    details: list[ApiErrorBase] | None = None


class RunningStatus(ArmModel):
    code: RunningStatusCode
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_action: Literal["Start", "Cancel"] | None = None
    last_action_time: datetime | None = None


class Progress(ArmModel):
    successful_instance_count: int = 0
    failed_instance_count: int = 0
    in_progress_instance_count: int = 0
    pending_instance_count: int = 0


class RollbackInfo(ArmModel):
    successfully_rolledback_instance_count: int = 0
    failed_rolledback_instance_count: int = 0
    rollback_error: ApiError | None = None


class HistoricalStatusProperties(ArmModel):
    """One OS upgrade attempt, as ``osUpgradeHistory`` lists it."""

    running_status: RunningStatus
    progress: Progress = Field(default_factory=Progress)
    error: ApiError | None = None
    started_by: StartedBy = "Unknown"
    target_image_reference: ImageReference | None = None
    rollback_info: RollbackInfo = Field(default_factory=RollbackInfo)


class HistoricalStatus(ArmModel):
    properties: HistoricalStatusProperties
    type: str = ROLLING_UPGRADES_TYPE
    location: str


class RollingUpgradeStatusProperties(ArmModel):
    policy: RollingUpgradePolicy | None = None
    running_status: RunningStatus
    progress: Progress = Field(default_factory=Progress)
    error: ApiError | None = None


class RollingUpgradeStatusInfo(ArmModel):
    """The ``rollingUpgrades/latest`` resource."""

    id: str | None = None
    name: str = "latest"
    type: str = ROLLING_UPGRADES_TYPE
    location: str
    tags: dict[str, str] = Field(default_factory=dict)
    properties: RollingUpgradeStatusProperties
