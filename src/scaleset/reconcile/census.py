"""What the store holds, counted: runs and instances per scale set (``/metrics`` gauges).

``census(store)`` reads everything in one transaction, so the counts of one
scrape describe one moment, and from the same columns the API reads: an
instance's health and image version are its record's (what ``GET
.../virtualMachines`` shows as ``vmHealth`` and ``exactVersion``), a run's
status, kind and starter are its row's (``rollingUpgrades/latest``,
``osUpgradeHistory``). It never writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from scaleset.store import tables as t
from scaleset.store.repository import Store


@dataclass(frozen=True, slots=True)
class ScaleSetName:
    """How a scale set is named in metrics labels (as its ARM id spells it)."""

    subscription: str
    resource_group: str
    name: str

    @classmethod
    def from_id(cls, arm_id: str, name: str) -> ScaleSetName:
        """Split ``/subscriptions/S/resourceGroups/G/providers/.../NAME``.

        >>> ScaleSetName.from_id("/subscriptions/s1/resourceGroups/RG/providers/"
        ...     "Microsoft.Compute/virtualMachineScaleSets/web", "web")
        ScaleSetName(subscription='s1', resource_group='RG', name='web')
        """
        parts = arm_id.strip("/").split("/")
        keyed = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
        return cls(keyed.get("subscriptions", ""), keyed.get("resourcegroups", ""), name)


@dataclass(frozen=True, slots=True)
class RunCount:
    scale_set: ScaleSetName
    kind: str
    started_by: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class InstanceCount:
    scale_set: ScaleSetName
    health: str
    image_version: str
    """"" for an instance with no image version yet."""
    count: int


@dataclass(frozen=True, slots=True)
class Census:
    runs: tuple[RunCount, ...]
    instances: tuple[InstanceCount, ...]


def census(store: Store) -> Census:
    """Runs by scale set, kind, starter and status; instances by scale set, health and
    image version: one read transaction."""
    s, r, i = t.scale_sets.c, t.runs.c, t.instances.c
    with store.transaction() as tx:
        names = {row.id: ScaleSetName.from_id(_display_id(row.model, row.id), row.name)
                 for row in tx.conn.execute(select(s.id, s.name, s.model))}
        runs = tx.conn.execute(
            select(r.scale_set_id, r.kind, r.started_by, r.status, func.count())
            .group_by(r.scale_set_id, r.kind, r.started_by, r.status)).all()
        instances = tx.conn.execute(
            select(i.scale_set_id, i.health_state, i.image_version, func.count())
            .group_by(i.scale_set_id, i.health_state, i.image_version)).all()
    return Census(
        runs=tuple(RunCount(names[sid], kind, started_by, status, n)
                   for sid, kind, started_by, status, n in runs if sid in names),
        instances=tuple(InstanceCount(names[sid], health, version or "", n)
                        for sid, health, version, n in instances if sid in names))


def _display_id(model: object, key: str) -> str:
    """The id as the client spelled it (the model keeps it), else the store's key."""
    if isinstance(model, dict) and isinstance(model.get("id"), str):
        return str(model["id"])
    return key
