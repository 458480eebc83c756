"""A rolling upgrade (a *run*) and its instances, as the store persists them.

All values are frozen; ``decide`` derives new ones with ``dataclasses.replace``.
A run moves along these edges only (``LEGAL_TRANSITIONS``)::

    RollingForward -> Completed | Faulted | Cancelled | RollingBack
    RollingBack    -> Faulted

and each of its instances along ``STEP_TRANSITIONS``::

    Pending      -> Upgrading | Succeeded (already on target)
    Upgrading    -> WaitingHealth | Failed | RollingBack
    WaitingHealth-> Succeeded | Failed | RollingBack
    Failed       -> RollingBack (only when the policy is breached)
    RollingBack  -> RolledBack | RollbackFailed
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scaleset.model.scaleset import RollingUpgradePolicy

DEFAULT_HEALTH_TIMEOUT = timedelta(minutes=5)
DEFAULT_BATCH_TIMEOUT = timedelta(hours=1)


class RunStatus(StrEnum):
    ROLLING_FORWARD = "RollingForward"
    ROLLING_BACK = "RollingBack"
    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    FAULTED = "Faulted"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.CANCELLED, RunStatus.COMPLETED, RunStatus.FAULTED)


LEGAL_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.ROLLING_FORWARD: frozenset(
        {RunStatus.COMPLETED, RunStatus.FAULTED, RunStatus.CANCELLED, RunStatus.ROLLING_BACK}
    ),
    RunStatus.ROLLING_BACK: frozenset({RunStatus.FAULTED}),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAULTED: frozenset(),
}


class RunKind(StrEnum):
    """What a run moves instances to: a new OS image, or a new model generation."""

    OS_IMAGE = "OSImage"
    MODEL = "Model"
    REIMAGE = "Reimage"
    """A fresh OS disk for chosen instances, even those already on the target."""


class StartedBy(StrEnum):
    PLATFORM = "Platform"
    USER = "User"


class Step(StrEnum):
    PENDING = "Pending"
    UPGRADING = "Upgrading"
    WAITING_HEALTH = "WaitingHealth"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"


STEP_TRANSITIONS: Mapping[Step, frozenset[Step]] = {
    Step.PENDING: frozenset({Step.UPGRADING, Step.SUCCEEDED}),
    Step.UPGRADING: frozenset({Step.WAITING_HEALTH, Step.FAILED, Step.ROLLING_BACK}),
    Step.WAITING_HEALTH: frozenset({Step.SUCCEEDED, Step.FAILED, Step.ROLLING_BACK}),
    Step.FAILED: frozenset({Step.ROLLING_BACK}),
    Step.ROLLING_BACK: frozenset({Step.ROLLED_BACK, Step.ROLLBACK_FAILED}),
    Step.SUCCEEDED: frozenset(),
    Step.ROLLED_BACK: frozenset(),
    Step.ROLLBACK_FAILED: frozenset(),
}

IN_FLIGHT_STEPS = frozenset({Step.UPGRADING, Step.WAITING_HEALTH, Step.ROLLING_BACK})
SETTLED_STEPS = frozenset({Step.SUCCEEDED, Step.FAILED, Step.ROLLED_BACK, Step.ROLLBACK_FAILED})
# Every instance whose upgrade failed counts as failed, whether or not it was rolled back.
FAILED_STEPS = frozenset({Step.FAILED, Step.ROLLING_BACK, Step.ROLLED_BACK, Step.ROLLBACK_FAILED})


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules one run follows, snapshotted when it starts.

    The percentages and the pause are ARM's ``rollingUpgradePolicy``; the
    health timeout is how long an upgraded instance has to become healthy
    (five minutes in Azure; a server setting here).
    """

    max_batch_instance_percent: int = 20
    max_unhealthy_instance_percent: int = 20
    max_unhealthy_upgraded_instance_percent: int = 20
    pause_time_between_batches: timedelta = timedelta(0)
    prioritize_unhealthy_instances: bool = False
    enable_cross_zone_upgrade: bool = False
    rollback_failed_instances_on_policy_breach: bool = False
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT
    batch_timeout: timedelta = DEFAULT_BATCH_TIMEOUT
    """A batch not settled by then (a reimage or rollback that never finishes) faults the
    run with RollingUpgradeTimeoutError instead of waiting forever."""
    by_update_domain: bool = False
    """Service Fabric: one update domain per batch, each started only on a healthy cluster."""

    @classmethod
    def from_model(
        cls, policy: RollingUpgradePolicy, *, health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT,
        by_update_domain: bool = False,
    ) -> Policy:
        return cls(
            max_batch_instance_percent=policy.max_batch_instance_percent,
            max_unhealthy_instance_percent=policy.max_unhealthy_instance_percent,
            max_unhealthy_upgraded_instance_percent=policy.max_unhealthy_upgraded_instance_percent,
            pause_time_between_batches=policy.pause_time_between_batches,
            prioritize_unhealthy_instances=policy.prioritize_unhealthy_instances,
            enable_cross_zone_upgrade=policy.enable_cross_zone_upgrade,
            rollback_failed_instances_on_policy_breach=(
                policy.rollback_failed_instances_on_policy_breach
            ),
            health_timeout=health_timeout,
            by_update_domain=by_update_domain,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run moves instances: an image version and a model generation."""

    image_version: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class RunError:
    code: str
    message: str
    target: str | None = None


@dataclass(frozen=True, slots=True)
class RunInstance:
    """One instance's part in a run."""

    instance_id: str
    step: Step = Step.PENDING
    batch: int | None = None
    health_deadline: datetime | None = None
    reason: str | None = None

    def to(self, step: Step, **changes: object) -> RunInstance:
        """This instance moved to ``step`` (checked against ``STEP_TRANSITIONS``)."""
        if step not in STEP_TRANSITIONS[self.step]:
            raise IllegalTransition(f"instance {self.instance_id}: {self.step} -> {step}")
        return dataclasses.replace(self, step=step, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Batch:
    index: int
    instance_ids: tuple[str, ...]
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    successful: int
    failed: int
    in_progress: int
    pending: int
    rolled_back: int
    rollback_failed: int

    @property
    def total(self) -> int:
        return self.successful + self.failed + self.in_progress + self.pending


@dataclass(frozen=True)
class Run:
    """One attempt to move a scale set to a target."""

    run_id: str
    scale_set_id: str
    kind: RunKind
    started_by: StartedBy
    target: Target
    policy: Policy
    start_time: datetime
    instances: Mapping[str, RunInstance]
    rollback_on_failure: bool = False
    rollback_on_breach: bool = False
    all_at_once: bool = False
    status: RunStatus = RunStatus.ROLLING_FORWARD
    end_time: datetime | None = None
    error: RunError | None = None
    cancel_requested: bool = False
    cancel_time: datetime | None = None
    batches: tuple[Batch, ...] = ()
    next_batch_at: datetime | None = None

    @property
    def open_batch(self) -> Batch | None:
        """The batch in progress, if any."""
        if self.batches and self.batches[-1].end is None:
            return self.batches[-1]
        return None

    def progress(self) -> Progress:
        counts = dict.fromkeys(Step, 0)
        for ri in self.instances.values():
            counts[ri.step] += 1
        return Progress(
            successful=counts[Step.SUCCEEDED],
            failed=sum(counts[s] for s in FAILED_STEPS),
            in_progress=counts[Step.UPGRADING] + counts[Step.WAITING_HEALTH],
            pending=counts[Step.PENDING],
            rolled_back=counts[Step.ROLLED_BACK],
            rollback_failed=counts[Step.ROLLBACK_FAILED],
        )

    def with_status(self, status: RunStatus, **changes: object) -> Run:
        """This run moved to ``status`` (checked against ``LEGAL_TRANSITIONS``)."""
        if status != self.status and status not in LEGAL_TRANSITIONS[self.status]:
            raise IllegalTransition(f"run {self.run_id}: {self.status} -> {status}")
        return dataclasses.replace(self, status=status, **changes)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Run:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class IllegalTransition(RuntimeError):
    """A state change that the run's state machine does not allow (a bug, never user input)."""
