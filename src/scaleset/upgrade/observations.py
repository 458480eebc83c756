"""What the shell saw in one pass: the fleet's health and facts, and driver operations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from scaleset.model.instance import HealthState


@dataclass(frozen=True, slots=True)
class InstanceObservation:
    """One instance as seen now: placement, what it runs, and its health."""

    instance_id: str
    zone: str | None = None
    update_domain: int = 0
    health: HealthState = HealthState.HEALTHY
    image_version: str | None = None
    generation: int = 0
    protected: bool = False

    @property
    def healthy(self) -> bool:
        return self.health is HealthState.HEALTHY


class OperationState(StrEnum):
    UNKNOWN = "Unknown"  # the driver never heard of it (not started, or lost in a crash)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class OperationObservation:
    op_id: str
    state: OperationState
    finished_at: datetime | None = None
    message: str | None = None


_UNKNOWN = OperationState.UNKNOWN


@dataclass(frozen=True)
class Observations:
    """Everything ``decide`` may look at besides the persisted run and the time."""

    instances: Mapping[str, InstanceObservation]
    operations: Mapping[str, OperationObservation] = field(default_factory=dict)
    cluster_healthy: bool | None = None
    """Service Fabric: whether every node of the cluster reports healthy (None: no cluster)."""
    watching_since: datetime | None = None
    """When this control plane began observing (its start), or None: always watching.

    A health wait only counts while someone watches: an instance whose wait ran out
    while the control plane was down gets one more health timeout from its start, the
    time its probes need to answer again, instead of failing on the first pass."""

    def operation(self, op_id: str) -> OperationObservation:
        return self.operations.get(op_id) or OperationObservation(op_id, _UNKNOWN)

    def unhealthy_count(self) -> int:
        return sum(1 for o in self.instances.values() if o.health is not HealthState.HEALTHY)
