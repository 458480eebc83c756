"""Read-only views over the store in ARM's shapes (what API and CLI show)."""

from __future__ import annotations

from datetime import datetime

from scaleset.errors import NotFound
from scaleset.model.upgrade import HistoricalStatus, RollingUpgradeStatusInfo
from scaleset.store.repository import Store
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
