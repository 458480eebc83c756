"""A run as ARM shows it: ``rollingUpgrades/latest`` and ``osUpgradeHistory`` items.

History keeps every run; the view users get is the last ``HISTORY_LIMIT``
OS upgrade attempts that started within ``HISTORY_WINDOW`` (five within two
months, as Azure documents it), newest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from scaleset.model.scaleset import ImageReference, RollingUpgradePolicy
from scaleset.model.upgrade import (
    ApiError,
    ApiErrorBase,
    HistoricalStatus,
    HistoricalStatusProperties,
    Progress,
    RollbackInfo,
    RollingUpgradeStatusInfo,
    RollingUpgradeStatusProperties,
    RunningStatus,
)
from scaleset.upgrade.state import Progress as RunProgress
from scaleset.upgrade.state import Run

HISTORY_LIMIT = 5
HISTORY_WINDOW = timedelta(days=60)


def _progress(p: RunProgress) -> Progress:
    return Progress(successful_instance_count=p.successful, failed_instance_count=p.failed,
                    in_progress_instance_count=p.in_progress, pending_instance_count=p.pending)


def _error(run: Run) -> ApiError | None:
    if run.error is None:
        return None
    # Which instances failed and why: the run's error names the rule, the details the causes.
    details = [ApiErrorBase(code="InstanceUpgradeFailed", target=f"instance {iid}",
                            message=ri.reason)
               for iid, ri in sorted(run.instances.items(), key=lambda kv: _natural(kv[0]))
               if ri.reason][:DETAILS_LIMIT]
    return ApiError(code=run.error.code, message=run.error.message, target=run.error.target,
                    details=details or None)


DETAILS_LIMIT = 20  # per-instance causes shown with a run's error


def _natural(instance_id: str) -> tuple[int, str]:
    return (int(instance_id), "") if instance_id.isdigit() else (1 << 62, instance_id)


def _running_status(run: Run) -> RunningStatus:
    last_action = "Cancel" if run.cancel_requested else "Start"
    return RunningStatus(
        code=run.status.value, start_time=run.start_time, end_time=run.end_time,
        last_action=last_action,
        last_action_time=run.cancel_time if run.cancel_requested else run.start_time,
    )


def history_item(run: Run, progress: RunProgress, *, location: str,
                 target_image_reference: Mapping[str, Any] | None) -> HistoricalStatus:
    """One ``osUpgradeHistory`` entry."""
    return HistoricalStatus(
        location=location,
        properties=HistoricalStatusProperties(
            running_status=_running_status(run).model_copy(
                update={"last_action": None, "last_action_time": None}),
            progress=_progress(progress),
            error=_error(run),
            started_by=run.started_by.value,
            target_image_reference=ImageReference.model_validate(target_image_reference)
            if target_image_reference else None,
            rollback_info=RollbackInfo(
                successfully_rolledback_instance_count=progress.rolled_back,
                failed_rolledback_instance_count=progress.rollback_failed,
            ),
        ),
    )


def latest_status(run: Run, progress: RunProgress, *, location: str, resource_id: str | None,
                  policy: RollingUpgradePolicy | None = None) -> RollingUpgradeStatusInfo:
    """The ``rollingUpgrades/latest`` resource for ``run``."""
    return RollingUpgradeStatusInfo(
        id=f"{resource_id}/rollingUpgrades/latest" if resource_id else None,
        location=location,
        properties=RollingUpgradeStatusProperties(
            policy=policy,
            running_status=_running_status(run),
            progress=_progress(progress),
            error=_error(run),
        ),
    )
